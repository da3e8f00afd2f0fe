/**
 * For pull tests that must change what the registry serves (a tampered blob,
 * zstd or uncompressed layers) or how (a download cut in the middle): a
 * private docker-registry (TLS, no auth) in a temp directory, and an HTTPS
 * proxy in front of it that records requests and can stall a blob halfway.
 * The shared harness registry (test/helpers/fixtures.ts) is for the rest.
 */
import { execa, type ResultPromise } from 'execa';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir, copyFile } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireHostTool } from '../helpers/host-tools.js';

interface Teardownable {
  teardown(fn: () => Promise<void> | void): void;
}

export interface PrivateRegistry {
  /** 127.0.0.1:PORT */
  host: string;
  /** certs.d-style directory with ca.crt */
  certDir: string;
  caFile: string;
  /** server certificate and key (the proxy reuses them: the certificate is for 127.0.0.1) */
  certFile: string;
  keyFile: string;
  /** the registry's storage root */
  storage: string;
  /** skopeo copy from an OCI layout ("dir:ref") to REPO:TAG, with extra skopeo flags */
  push(ociLayout: string, target: string, extra?: string[]): Promise<void>;
  /**
   * Pushes an image through the distribution API directly (blobs, then the
   * manifest), for content skopeo would convert (it compresses layers it
   * pushes to a registry).
   */
  pushRaw(repository: string, tag: string, blobs: Buffer[], manifest: Buffer, mediaType: string): Promise<void>;
  /** the file docker-registry's filesystem driver keeps a blob's bytes in */
  blobFile(digest: string): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitForHttps(host: string, ca: Buffer, child: ResultPromise): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}) before answering`);
    const ok = await new Promise<boolean>((resolve) => {
      const req = httpsRequest(`https://${host}/v2/`, { ca, timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`docker-registry at ${host} did not come up in 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

export async function startPrivateRegistry(t: Teardownable): Promise<PrivateRegistry> {
  const registryBin = requireHostTool('docker-registry');
  const openssl = requireHostTool('openssl');
  requireHostTool('skopeo');
  const dir = await mkdtemp(join(tmpdir(), 'nook-reg-'));
  const caFile = join(dir, 'ca.pem');
  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server.key');
  const ext = join(dir, 'server.ext');
  await execa(openssl, ['req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-days', '2', '-subj', '/CN=nook pull test CA', '-keyout', join(dir, 'ca.key'), '-out', caFile, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await execa(openssl, ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-subj', '/CN=127.0.0.1', '-keyout', keyFile, '-out', join(dir, 'server.csr')]);
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  await execa(openssl, ['x509', '-req', '-in', join(dir, 'server.csr'), '-CA', caFile, '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', certFile]);
  const certDir = join(dir, 'certs');
  await mkdir(certDir);
  await copyFile(caFile, join(certDir, 'ca.crt'));
  const storage = join(dir, 'storage');
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${storage}`,
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: ${host}`,
      '  secret: nook-pull-tests',
      '  tls:',
      `    certificate: ${certFile}`,
      `    key: ${keyFile}`,
      '',
    ].join('\n'),
  );
  const child = execa(registryBin, ['serve', join(dir, 'config.yml')], { reject: false, stdio: 'ignore' });
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await child;
    await rm(dir, { recursive: true, force: true });
  };
  t.teardown(stop);
  await waitForHttps(host, await readFile(caFile), child);
  return {
    host,
    certDir,
    caFile,
    certFile,
    keyFile,
    storage,
    async push(ociLayout, target, extra = []) {
      await execa('skopeo', ['--insecure-policy', 'copy', '--quiet', '--dest-cert-dir', certDir, ...extra, `oci:${ociLayout}`, `docker://${host}/${target}`]);
    },
    async pushRaw(repository, tag, blobs, manifest, mediaType) {
      const ca = await readFile(caFile);
      const call = (method: string, url: string, body: Buffer | undefined, headers: Record<string, string> = {}) =>
        new Promise<IncomingMessage>((resolve, reject) => {
          const req = httpsRequest(url.startsWith('https:') ? url : `https://${host}${url}`, { method, ca, headers: { 'content-length': String(body?.length ?? 0), ...headers } }, resolve);
          req.on('error', reject);
          req.end(body);
        });
      for (const blob of blobs) {
        const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
        const start = await call('POST', `/v2/${repository}/blobs/uploads/`, undefined);
        start.resume();
        if (start.statusCode !== 202) throw new Error(`upload start for ${repository}: HTTP ${start.statusCode}`);
        const location = new URL(String(start.headers.location), `https://${host}`);
        location.searchParams.set('digest', digest);
        const put = await call('PUT', location.toString(), blob, { 'content-type': 'application/octet-stream' });
        put.resume();
        if (put.statusCode !== 201) throw new Error(`upload of ${digest}: HTTP ${put.statusCode}`);
      }
      const answer = await call('PUT', `/v2/${repository}/manifests/${tag}`, manifest, { 'content-type': mediaType });
      answer.resume();
      if (answer.statusCode !== 201) throw new Error(`manifest ${repository}:${tag}: HTTP ${answer.statusCode}`);
    },
    blobFile(digest) {
      const hex = digest.replace(/^sha256:/, '');
      return join(storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    },
    stop,
  };
}

export interface ProxyRequest {
  method: string;
  path: string;
  range: string | undefined;
}

export interface RegistryProxy {
  host: string;
  requests: ProxyRequest[];
  /**
   * Blob digests whose responses are cut: after `afterBytes` of the body the
   * proxy stops sending (the connection stays open, as a stalled network).
   */
  stall: Map<string, number>;
  close(): Promise<void>;
}

/** An HTTPS proxy (same certificate as the registry) that records requests and can stall blobs. */
export async function startProxy(t: Teardownable, registry: PrivateRegistry): Promise<RegistryProxy> {
  const ca = await readFile(registry.caFile);
  const requests: ProxyRequest[] = [];
  const stall = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server = createHttpsServer({ cert: await readFile(registry.certFile), key: await readFile(registry.keyFile) }, (req: IncomingMessage, res: ServerResponse) => {
    const range = typeof req.headers.range === 'string' ? req.headers.range : undefined;
    requests.push({ method: req.method ?? 'GET', path: req.url ?? '', range });
    const headers = { ...req.headers, host: registry.host };
    const upstream = httpsRequest(`https://${registry.host}${req.url}`, { method: req.method, headers, ca }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      const digest = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '')?.[1];
      const limit = digest ? stall.get(digest) : undefined;
      if (limit === undefined) {
        answer.pipe(res);
        return;
      }
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        if (sent >= limit) return;
        const part = chunk.subarray(0, limit - sent);
        sent += part.length;
        res.write(part);
      });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  t.teardown(close);
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests, stall, close };
}
