import { Suspense } from 'react';

export const dynamic = 'force-dynamic';

async function Late() {
  await new Promise((r) => setTimeout(r, 50));
  return <p>late part</p>;
}

export default function Page() {
  return (
    <main>
      <h1>suspense</h1>
      <Suspense fallback={<p>loading</p>}>
        <Late />
      </Suspense>
    </main>
  );
}
