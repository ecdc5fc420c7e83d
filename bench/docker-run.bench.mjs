// The docker-run handler's benchmark lives beside the handler; run.mjs picks up bench/*.bench.mjs.
export * from '../plugins/handler-docker-run/bench/docker-run.bench.mjs'
