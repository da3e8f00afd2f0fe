/**
 * HTTP(S) to registries over Node's own client: one keep-alive agent per host
 * with that host's TLS trust (certs.d), redirects (blob downloads are often
 * sent to object storage elsewhere, which must not receive our credentials),
 * retries with backoff on 5xx, 429 and connection resets (never on other 4xx),
 * and network failures turned into one-line errors that say how to fix them.
 */
import http from 'node:http';
import https from 'node:https';
import { createSecureContext } from 'node:tls';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { NookError, errnoCode } from '../../lib/errors.js';
import { tlsMaterialFor, userCertsDir, type TlsMaterial } from './certs.js';
import { RegistryError } from './errors.js';

export interface TransportOptions {
  /** --tls-verify: true/false forces it; undefined verifies unless the registry is insecure in registries.conf. */
  tlsVerify?: boolean | undefined;
  /** --cert-dir: replaces certs.d for every host */
  certDir?: string | undefined;
  /** registries.conf `insecure = true` (http allowed, certificate not verified) */
  isInsecure?: ((host: string) => boolean) | undefined;
  env?: NodeJS.ProcessEnv;
  /** attempts for a request that fails with a 5xx or a reset (default 4) */
  attempts?: number;
  /** base of the exponential backoff, in ms (default 300) */
  backoffMs?: number;
  /** idle time after which a connection is considered dead, ms (default 60 s) */
  idleTimeoutMs?: number;
  /** --debug lines (requests, retries) */
  log?: ((line: string) => void) | undefined;
  /** aborts every request (and body) in flight, and the waits between retries */
  signal?: AbortSignal | undefined;
}

export interface Request {
  method: 'GET' | 'HEAD';
  /** an absolute URL, or a path on `host` */
  url: string;
  host?: string;
  headers?: OutgoingHttpHeaders;
  /** follow redirects (default true) */
  followRedirects?: boolean;
}

const USER_AGENT = 'nook/0.1.0';

/** Verification errors that a wider set of trusted CAs might resolve. */
const UNKNOWN_AUTHORITY = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT']);

/** Network errors worth another try: the connection broke, not the request. */
const TRANSIENT = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET', 'ERR_HTTP_REQUEST_TIMEOUT']);

const TLS_CODES: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'certificate signed by unknown authority',
  UNABLE_TO_GET_ISSUER_CERT: 'certificate signed by unknown authority',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'certificate signed by unknown authority',
  SELF_SIGNED_CERT_IN_CHAIN: 'certificate signed by unknown authority (self-signed in chain)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  ERR_TLS_CERT_ALTNAME_INVALID: 'certificate is not valid for this host name',
  CERT_SIGNATURE_FAILURE: 'certificate signature failure',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the server does not speak TLS (plain HTTP?)',
  EPROTO: 'TLS handshake failed',
};

export function isTlsError(error: unknown): boolean {
  const code = errnoCode(error);
  return code !== undefined && (code in TLS_CODES || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'));
}

export class Transport {
  private readonly agents = new Map<string, http.Agent>();
  /** agents (by key) that trust only their host's certs.d CAs so far, with what trusting everything takes */
  private readonly narrowAgents = new Map<string, TlsMaterial>();
  /** hosts found to speak plain HTTP (only ever for insecure ones) */
  private readonly plainHttp = new Set<string>();
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly idleTimeoutMs: number;

  constructor(private readonly options: TransportOptions = {}) {
    this.attempts = options.attempts ?? 4;
    this.backoffMs = options.backoffMs ?? 300;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  }

  /** May this host be reached without verifying its certificate, and over plain HTTP? */
  insecure(host: string): boolean {
    if (this.options.tlsVerify === false) return true;
    if (this.options.tlsVerify === true) return false;
    return this.options.isInsecure?.(host) ?? false;
  }

  /** The base URL of a registry's API: https, unless an insecure host turned out to speak plain HTTP. */
  baseUrl(host: string): string {
    return `${this.plainHttp.has(host) ? 'http' : 'https'}://${apiHost(host)}`;
  }

  log(line: string): void {
    this.options.log?.(line);
  }

  /**
   * Sends a request, following redirects and retrying transient failures.
   * Resolves with the final response for any status; the caller reads or
   * discards the body.
   */
  async send(request: Request): Promise<IncomingMessage> {
    let url = new URL(request.url.startsWith('/') ? `${this.baseUrl(request.host ?? '')}${request.url}` : request.url);
    const originHost = url.host;
    let headers: OutgoingHttpHeaders = { 'user-agent': USER_AGENT, ...request.headers };
    for (let redirects = 0; ; redirects++) {
      const response = await this.sendWithRetries(request.method, url, headers, request.host);
      const location = response.headers.location;
      if (request.followRedirects === false || ![301, 302, 303, 307, 308].includes(response.statusCode ?? 0) || !location) return response;
      response.resume();
      if (redirects >= 10) throw new RegistryError('server', `too many redirects fetching ${url.pathname} from ${originHost}`);
      const next = new URL(location, url);
      // Credentials are for the registry; a presigned storage URL elsewhere rejects them (and must not see them).
      if (next.host !== originHost) {
        const { authorization: _dropped, ...rest } = headers;
        headers = rest;
      }
      this.log(`redirect ${url.host}${url.pathname} -> ${next.host}${next.pathname}`);
      url = next;
    }
  }

  private async sendWithRetries(method: string, url: URL, headers: OutgoingHttpHeaders, registryHost: string | undefined): Promise<IncomingMessage> {
    for (let attempt = 1; ; attempt++) {
      let response: IncomingMessage;
      try {
        response = await this.sendOnce(method, url, headers);
      } catch (error) {
        const code = errnoCode(error);
        if (code !== undefined && UNKNOWN_AUTHORITY.has(code) && this.widenTrust(url)) {
          attempt--; // not a failure of the registry's
          continue;
        }
        const fallback = url.protocol === 'https:' && registryHost !== undefined && this.insecure(registryHost) && (isTlsError(error) || code === 'ECONNRESET');
        if (fallback) {
          // An insecure registry may speak plain HTTP: try that, and remember it.
          this.log(`${url.host} does not answer TLS (${code}); trying plain HTTP since it is insecure`);
          const plain = new URL(url);
          plain.protocol = 'http:';
          try {
            response = await this.sendOnce(method, plain, headers);
          } catch {
            throw this.describe(error, url);
          }
          this.plainHttp.add(registryHost);
          url = plain;
        } else if (code !== undefined && TRANSIENT.has(code) && attempt < this.attempts) {
          await this.backoff(attempt, `${method} ${url.host}${url.pathname}: ${code}`);
          continue;
        } else {
          throw this.describe(error, url);
        }
      }
      const status = response.statusCode ?? 0;
      if ((status >= 500 || status === 429) && attempt < this.attempts) {
        response.resume();
        await this.backoff(attempt, `${method} ${url.host}${url.pathname}: HTTP ${status}`, retryAfterMs(response.headers['retry-after']));
        continue;
      }
      return response;
    }
  }

  private async backoff(attempt: number, what: string, atLeastMs = 0): Promise<void> {
    const delay = Math.max(atLeastMs, this.backoffMs * 2 ** (attempt - 1) * (0.75 + Math.random() / 2));
    this.log(`${what}; retrying in ${Math.round(delay)} ms (attempt ${attempt + 1}/${this.attempts})`);
    await sleep(delay, undefined, this.options.signal ? { signal: this.options.signal } : {});
  }

  private sendOnce(method: string, url: URL, headers: OutgoingHttpHeaders): Promise<IncomingMessage> {
    const isHttps = url.protocol === 'https:';
    const agent = this.agentFor(url, isHttps);
    return new Promise((resolve, reject) => {
      const req = (isHttps ? https : http).request(url, { method, headers, agent, ...(this.options.signal ? { signal: this.options.signal } : {}) }, (res) => {
        this.log(`${method} ${url.host}${url.pathname}${url.search ? '?…' : ''} -> ${res.statusCode}`);
        resolve(res);
      });
      // Covers the body too while the response is read: a stalled download is an error, not a hang.
      req.setTimeout(this.idleTimeoutMs, () => req.destroy(Object.assign(new Error('no answer in time'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end();
    });
  }

  private agentFor(url: URL, isHttps: boolean): http.Agent {
    const key = `${url.protocol}//${url.host}`;
    let agent = this.agents.get(key);
    if (agent) return agent;
    if (!isHttps) {
      agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    } else {
      const host = url.host;
      const material = tlsMaterialFor(registryHostForCerts(host), { certDir: this.options.certDir, env: this.options.env });
      // A registry with a CA of its own in certs.d (or --cert-dir) is tried with that CA alone:
      // parsing the system's whole bundle costs ~10 ms before the first request (on top of
      // ~20 ms of OpenSSL set-up that any context costs). A certificate
      // that it does not verify gets the whole set (widenTrust); trusting a subset first never
      // accepts what the whole set would refuse.
      const narrow = material.extraCas.length > 0 && material.ca !== undefined && material.ca.length > material.extraCas.length;
      agent = this.httpsAgent(host, material, narrow ? material.extraCas : material.ca);
      if (narrow) this.narrowAgents.set(key, material);
    }
    this.agents.set(key, agent);
    return agent;
  }

  private httpsAgent(host: string, material: TlsMaterial, ca: string[] | undefined): https.Agent {
    // One secure context per host: given `ca` alone, every new connection would parse the whole CA bundle again (~30 ms).
    const secureContext = createSecureContext({ ca, cert: material.cert, key: material.key });
    return new https.Agent({ keepAlive: true, maxSockets: 16, secureContext, rejectUnauthorized: !this.insecure(registryHostForCerts(host)) });
  }

  /** The agent of `url` trusted only certs.d CAs: it now trusts the system's too. False when there is nothing wider. */
  private widenTrust(url: URL): boolean {
    const key = `${url.protocol}//${url.host}`;
    const material = this.narrowAgents.get(key);
    if (!material) return false;
    this.narrowAgents.delete(key);
    this.agents.get(key)?.destroy();
    this.agents.set(key, this.httpsAgent(url.host, material, material.ca));
    this.log(`${url.host}: its certificate is not signed by the CAs of ${material.certDir ?? 'its certificate directory'}; trying the system's as well`);
    return true;
  }

  /** A network error as one line: what failed, for which host, and the fix. */
  describe(error: unknown, url: URL): NookError {
    if (this.options.signal?.aborted) return abortReason(this.options.signal);
    const code = errnoCode(error);
    const host = registryHostForCerts(url.host);
    if (isTlsError(error)) {
      const message = error instanceof Error ? error.message : String(error);
      // OpenSSL reports a plain-HTTP answer to a ClientHello as EPROTO "wrong version number"
      const plainHttp = code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/.test(message);
      const what = plainHttp ? TLS_CODES.ERR_SSL_WRONG_VERSION_NUMBER : ((code && TLS_CODES[code]) ?? message);
      const fix =
        plainHttp
          ? `if ${host} serves plain HTTP, mark it insecure in registries.conf or use --tls-verify=false`
          : `put its CA certificate in ${userCertsDir(host, this.options.env)}/ca.crt (or use --cert-dir), or use --tls-verify=false`;
      return new RegistryError('tls', `TLS failure talking to ${host}: ${what}; ${fix}`, { cause: error });
    }
    const reasons: Record<string, string> = {
      ECONNREFUSED: 'connection refused',
      ENOTFOUND: 'host name not found',
      EAI_AGAIN: 'host name lookup failed',
      EHOSTUNREACH: 'host unreachable',
      ENETUNREACH: 'network unreachable',
      ETIMEDOUT: 'timed out',
      ECONNRESET: 'connection reset',
      EPIPE: 'connection reset',
    };
    const reason = (code && reasons[code]) ?? (error instanceof Error ? error.message : String(error));
    return new RegistryError('unreachable', `registry ${host} is unreachable: ${reason}`, { cause: error });
  }

  /** Closes every kept-alive connection. */
  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }
}

/** Why a pull was stopped: the signal's reason when it is a NookError, else "interrupted". */
export function abortReason(signal: AbortSignal): NookError {
  return signal.reason instanceof NookError ? signal.reason : new NookError('interrupted', { cause: signal.reason });
}

/** Docker Hub's API does not live at the name people use for it. */
export function apiHost(host: string): string {
  return host === 'docker.io' || host === 'index.docker.io' ? 'registry-1.docker.io' : host;
}

function registryHostForCerts(urlHost: string): string {
  return urlHost === 'registry-1.docker.io' ? 'docker.io' : urlHost;
}

function retryAfterMs(header: string | undefined): number {
  if (!header) return 0;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
  return Math.min(Math.max(ms, 0), 10_000);
}

/** Reads a (small) response body as text, with a size limit against a hostile server. */
export async function readBody(response: IncomingMessage, limit = 8 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) {
      response.destroy();
      throw new RegistryError('server', `response from the registry is larger than ${limit} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}
