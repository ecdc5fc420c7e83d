// supports-color 8 (@oclif/core's, bundled into root-help.ts) ships no types: the part tp uses.
declare module 'supports-color' {
  type Level = false | {level: number; hasBasic: boolean; has256: boolean; has16m: boolean}
  export const stdout: Level
  export const stderr: Level
}
