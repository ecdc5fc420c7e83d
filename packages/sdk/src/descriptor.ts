/**
 * What every extension is made of, whatever its point: a descriptor that tp reads without loading
 * the extension, and the factory its module exports, given the plugin context.
 */

/** What an implementation module exports as default: a factory given the plugin context. */
export type Factory<T, C extends PluginContext = PluginContext> = (context: C) => T | Promise<T>

/**
 * What a plugin's hook returns: a description, never an instance. The host imports the
 * implementation (`load`) only when this extension is chosen.
 */
export interface Descriptor<T, C extends PluginContext = PluginContext> {
  name: string
  apiVersion: number
  summary: string
  load: () => Promise<{default: Factory<T, C>}>
}

export interface Logger {
  info(message: string): void
  warn(message: string): void
  debug(message: string): void
}

/** Given to every implementation factory. */
export interface PluginContext {
  /** tp's version (images and plugins are tied to it). */
  tpVersion: string
  /** Directory for caches (connection records, env files): ~/.cache/tp unless configured. */
  cacheDir: string
  log: Logger
}
