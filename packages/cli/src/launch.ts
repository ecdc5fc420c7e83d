/**
 * What bin/run.js does before oclif, as one module (dist/bundle/launch.js, bundled on its own:
 * no chunks to find and link before the first useful line): `tp --version` answered without
 * oclif, the Docker engine asked early for `tp version`, the data directory chosen by pins.
 */
export {prefetchEngineVersion} from './engine-prefetch.js'
export {selectDataDir} from './pins/select-data-dir.js'
export {answeredVersionFlag} from './version-flag.js'
export {fastCommand} from './fast-command.js'
