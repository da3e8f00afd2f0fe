// ava inside the VM guest (test/vm/run.sh): the VM tier's *.vmtest.js, which
// the host suite's "*.test.js" never picks up, and the host suite's cgroup
// test, which there takes its "a cgroup manager exists" branch.
export default {
  files: ['dist/test/vm/**/*.vmtest.js', 'dist/test/integration/cgroups.test.js'],
  timeout: '5m',
  concurrency: 2,
  workerThreads: false,
  cache: false,
};
