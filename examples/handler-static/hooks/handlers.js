import {API_VERSION, defineHandlers} from '@tp/sdk'

// read when tp starts: descriptors only; handler.js is imported when --static is given
export default defineHandlers([
  {
    name: 'static',
    apiVersion: API_VERSION,
    summary: 'the files of a local directory answer the intercepted traffic (tp intercept <workload> --static ./public)',
    selectedBy: 'static',
    flags: {
      static: {type: 'string', helpValue: '<dir>', description: 'serve the files of <dir> as the intercepted service'},
      'static-fallback': {
        type: 'string',
        helpValue: '<file>',
        description: 'answer paths without an extension that match no file with this file of <dir> (index.html for a single-page app)',
      },
    },
    load: () => import('../handler.js'),
  },
])
