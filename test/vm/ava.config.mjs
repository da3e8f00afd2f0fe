// ava inside the VM guest (test/vm/run.sh): only the VM tier's *.vmtest.js,
// which the host suite's "*.test.js" never picks up.
export default {
  files: ['dist/test/vm/**/*.vmtest.js'],
  timeout: '5m',
  concurrency: 1,
  workerThreads: false,
  cache: false,
};
