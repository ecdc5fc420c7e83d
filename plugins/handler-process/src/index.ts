export {ProcessHandler, findCommand, processNotes} from './handler.js'
