import {API_VERSION, defineHandlers} from '@tp/sdk'

export default defineHandlers([
  {
    name: 'docker-build',
    apiVersion: API_VERSION,
    summary: 'build an image from a context through the Docker Engine API, then docker run it as the handler',
    selectedBy: 'docker-build',
    publishesPorts: true,
    // docker-build implies docker-run; this handler must win when both are selected
    precedence: 10,
    flags: {
      'docker-build': {
        type: 'string',
        helpValue: '<context>',
        implies: 'docker-run',
        description:
          'Build the handler image from this context (a directory, or a Dockerfile meaning "its folder as context") and run it; ' +
          'write IMAGE where the image goes after --, tp replaces it with the built image ID',
      },
      'docker-build-opt': {
        type: 'string',
        multiple: true,
        helpValue: 'key=value',
        description:
          'Option for the build, repeatable: tag, file (relative to the context), build-arg=NAME=value, target, label=key=value, platform, no-cache, pull',
      },
    },
    load: () => import('../handler.js'),
  },
])
