/**
 * The tarball reader, extractor and writer live in ./transport/ (tar-policy,
 * tar-reader, tar-extract, tar-writer); this module keeps the old import path
 * for the code that still uses it.
 */
export {
  DEFAULT_MAX_MEMBERS,
  TarSafetyError,
  checkMemberPath,
  inflatedLimit,
  type ReadTarOptions,
  type TarEntry,
  type TarSafetyErrorCode,
} from "./transport/tar-policy.ts";
export { readTarGz, readTarGzStream } from "./transport/tar-reader.ts";
export { extractSafely } from "./transport/tar-extract.ts";
export { createTarGz, storedGzipSize, writeStoredGzip, type TarFileInput } from "./transport/tar-writer.ts";
