/**
 * A NativeTcpTransport that always listens and connects with TLS, with the
 * test certificate of test/fixtures/tls: for running the conformance and
 * framework suites over native TLS unchanged.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NativeTcpTransport, type NativeConnectOptions, type NativeListenOptions } from '../../lib/transport/native-tcp.js';
import { NativeWsTransport } from '../../lib/transport/native-ws.js';
import type { Endpoint } from '../../lib/transport/types.js';

const dir = join(import.meta.dirname, '..', 'fixtures', 'tls');
const pem = (f: string) => readFileSync(join(dir, f), 'latin1');
export const CA = pem('ca.pem');
export const CERT = pem('server.pem');
export const KEY = pem('server.key');
export const OTHER = pem('other.pem');
export const serverTls = { cert: CERT, key: KEY };
export const clientTls = { ca: CA, servername: 'localhost' };

export class TlsTransport extends NativeTcpTransport {
  override listen(endpoint: Endpoint, options?: NativeListenOptions) {
    return super.listen(endpoint, { ...options, tls: { ...serverTls, ...options?.tls } });
  }
  override connect(endpoint: Endpoint, options?: NativeConnectOptions) {
    return super.connect(endpoint, { ...options, tls: { ...clientTls, ...options?.tls } });
  }
}

/** A NativeWsTransport that always listens and connects with TLS (wss://), with the same certificate. */
export class WssTransport extends NativeWsTransport {
  override listen(endpoint: Endpoint, options?: NativeListenOptions) {
    return super.listen(endpoint, { ...options, tls: { ...serverTls, ...options?.tls } });
  }
  override connect(endpoint: Endpoint, options?: NativeConnectOptions) {
    return super.connect(endpoint, { ...options, tls: { ...clientTls, ...options?.tls } });
  }
}

/** base64(SHA-256(SubjectPublicKeyInfo)) of the server certificate: what Chromium's --ignore-certificate-errors-spki-list takes. */
export const SERVER_SPKI = createHash('sha256')
  .update(new X509Certificate(CERT).publicKey.export({ type: 'spki', format: 'der' }))
  .digest('base64');
