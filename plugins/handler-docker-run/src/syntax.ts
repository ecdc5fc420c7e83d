/** How `--docker-run` is written, shown in every usage error. */
export const DOCKER_RUN_SYNTAX = 'tp intercept <workload> --port <port> --docker-run -- [docker run options] <image> [command] [args...]'

export const WRITE_IT_AS = `write: ${DOCKER_RUN_SYNTAX}`
