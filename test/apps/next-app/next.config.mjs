// The Next.js app of test/frameworks/next.test.ts (built once per run, in a temp dir).
export default {
  poweredByHeader: true,
  async redirects() {
    return [{ source: '/old', destination: '/', permanent: true }];
  },
};
