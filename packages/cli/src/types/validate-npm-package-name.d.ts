// validate-npm-package-name ships no types: the part tp uses.
declare module 'validate-npm-package-name' {
  interface Validation {
    validForNewPackages: boolean
    validForOldPackages: boolean
    errors?: string[]
    warnings?: string[]
  }
  export default function validate(name: string): Validation
}
