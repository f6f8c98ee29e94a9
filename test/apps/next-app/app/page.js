export default function Home() {
  return (
    <main>
      <h1>hello from next</h1>
    </main>
  );
}
