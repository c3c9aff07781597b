/**
 * The file service (docs/files.md): `serveFiles()` on a Server, `filesClient()` on a Client.
 */
export { serveFiles, type FilesOptions, type FileService } from './server.js';
export { filesClient, FilesClient, type ChunksOptions, type TransferOptions, type TransferProgress, type TransferResult, type FileEntry, type FileStat } from './client.js';
export { FilesCommand, HASH_BLOCK, type HashAlgorithm } from './protocol.js';
export { checkName } from './paths.js';
