/**
 * A 53-bit hash of a file's bytes (cyrb53 over 32-bit words), to tell whether a file is still the
 * one the build saw (fast-start.ts checks ~50 kB at every start). Not node:crypto (2.5-4 ms to
 * load) and not byte by byte (lockKey's loop takes ~10 ms there): ~0.6 ms.
 */
export function contentHash(bytes: Uint8Array): string {
  // read as words in place when the offset is a multiple of 4, else from a copy (Uint8Array's slice
  // copies; a Buffer's is a view)
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : Uint8Array.prototype.slice.call(bytes)
  const words = new Int32Array(aligned.buffer, aligned.byteOffset, aligned.length >> 2)
  let h1 = 0xdeadbeef ^ bytes.length
  let h2 = 0x41c6ce57
  for (let i = 0; i < words.length; i++) {
    const w = words[i]
    h1 = Math.imul(h1 ^ w, 2654435761)
    h2 = Math.imul(h2 ^ w, 1597334677)
  }
  for (let i = words.length * 4; i < aligned.length; i++) {
    h1 = Math.imul(h1 ^ aligned[i], 2654435761)
    h2 = Math.imul(h2 ^ aligned[i], 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, '0')
}
