/**
 * The distribution protocol against a small HTTP server on loopback that
 * misbehaves on purpose (token auth, 5xx, resets mid-body, redirects, wrong
 * content). The real registry is exercised by test/integration/pull*.test.ts.
 */
import test from 'ava';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transport } from '../../src/image/registry/transport.js';
import { RegistrySession } from '../../src/image/registry/session.js';
import { fetchManifest } from '../../src/image/registry/client.js';
import { downloadBlob } from '../../src/image/registry/blob-download.js';
import { RegistryError } from '../../src/image/registry/errors.js';

type Handler = (req: IncomingMessage, res: ServerResponse, port: number) => void;

async function withServer(handler: Handler, fn: (host: string, transport: Transport) => Promise<void>): Promise<void> {
  const server = createServer((req, res) => handler(req, res, (server.address() as AddressInfo).port));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  // insecure: the https attempt fails, plain HTTP is used and remembered
  const transport = new Transport({ isInsecure: () => true, backoffMs: 5, log: process.env.DEBUG_PROTO ? (l) => console.error(l) : undefined });
  try {
    await fn(host, transport);
  } finally {
    transport.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

const sha = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

const blob = Buffer.alloc(300_000);
for (let i = 0; i < blob.length; i++) blob[i] = (i * 7919) % 251;
const blobDigest = sha(blob);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha('{}'), size: 2 },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: blobDigest, size: blob.length }],
  }),
);
const manifestDigest = sha(manifest);
const dir = mkdtempSync(join(tmpdir(), 'nook-proto-'));
const creds = { username: 'alice', password: 'wonderland' };
const basic = `Basic ${Buffer.from('alice:wonderland').toString('base64')}`;

function sendManifest(res: ServerResponse, body = manifest): void {
  res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': sha(body) });
  res.end(body);
}

test('bearer token flow: challenge, token with credentials and scope, token reused', async (t) => {
  const seen: string[] = [];
  await withServer(
    (req, res, port) => {
      seen.push(`${req.url} ${req.headers.authorization ?? '-'}`);
      if (req.url!.startsWith('/token')) {
        const url = new URL(req.url!, 'http://x');
        if (req.headers.authorization !== basic) return void res.writeHead(401).end();
        t.is(url.searchParams.get('scope'), 'repository:team/app:pull');
        t.is(url.searchParams.get('service'), 'test-registry');
        return void res.end(JSON.stringify({ token: 'T0K3N', expires_in: 300 }));
      }
      if (req.headers.authorization !== 'Bearer T0K3N') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="test-registry",scope="repository:team/app:pull"` });
        return void res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      }
      sendManifest(res);
    },
    async (host, transport) => {
      const session = new RegistrySession({ transport, host, repository: 'team/app', credentials: creds });
      const first = await fetchManifest(session, 'latest');
      t.is(first.digest, manifestDigest);
      t.is(first.manifest.kind, 'image');
      await fetchManifest(session, manifestDigest);
      // one challenge, one token, then the token is sent up front
      t.is(seen.filter((s) => s.startsWith('/token')).length, 1);
      t.is(seen.filter((s) => s.includes('Bearer T0K3N')).length, 2);

      const wrong = new RegistrySession({ transport, host, repository: 'team/app', credentials: { username: 'alice', password: 'nope' }, credentialsSource: '--creds' });
      await t.throwsAsync(fetchManifest(wrong, 'latest'), { instanceOf: RegistryError, message: `wrong username or password for ${host} (from --creds)` });
    },
  );
});

test('basic auth: no credentials and wrong credentials are told apart', async (t) => {
  await withServer(
    (req, res) => {
      if (req.headers.authorization !== basic) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
      sendManifest(res);
    },
    async (host, transport) => {
      const anonymous = new RegistrySession({ transport, host, repository: 'a' });
      await t.throwsAsync(fetchManifest(anonymous, 'latest'), { message: `${host} requires authentication: log in with nook login ${host} or pass --creds` });
      const wrong = new RegistrySession({ transport, host, repository: 'a', credentials: { username: 'alice', password: 'x' } });
      await t.throwsAsync(fetchManifest(wrong, 'latest'), { message: `wrong username or password for ${host}` });
      const good = new RegistrySession({ transport, host, repository: 'a', credentials: creds });
      t.is((await fetchManifest(good, 'latest')).digest, manifestDigest);
      await good.checkLogin();
      await t.throwsAsync(wrong.checkLogin(), { message: /wrong username or password/ });
    },
  );
});

test('5xx is retried with backoff, 4xx is not; unknown tags and manifests say so', async (t) => {
  let calls = 0;
  await withServer(
    (req, res) => {
      calls++;
      if (req.url === '/v2/flaky/manifests/latest' && calls < 3) return void res.writeHead(503).end();
      if (req.url === '/v2/flaky/manifests/latest') return sendManifest(res);
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    },
    async (host, transport) => {
      t.is((await fetchManifest(new RegistrySession({ transport, host, repository: 'flaky' }), 'latest')).digest, manifestDigest);
      t.is(calls, 3);
      calls = 0;
      await t.throwsAsync(fetchManifest(new RegistrySession({ transport, host, repository: 'gone' }), 'v1'), { message: `unknown image or tag ${host}/gone:v1` });
      t.is(calls, 1);
    },
  );
});

test('a manifest whose bytes do not match the digest asked for is refused', async (t) => {
  await withServer(
    (_req, res) => sendManifest(res, Buffer.from(manifest.toString().replace('"schemaVersion":2', '"schemaVersion": 2'))),
    async (host, transport) => {
      const session = new RegistrySession({ transport, host, repository: 'a' });
      await t.throwsAsync(fetchManifest(session, manifestDigest), { instanceOf: RegistryError, message: /does not match its digest/ });
    },
  );
});

test('a blob download interrupted mid-body resumes with Range; credentials are not sent across a redirect', async (t) => {
  const ranges: string[] = [];
  let resets = 0;
  await withServer(
    (req, res) => {
      if (req.url!.startsWith('/v2/')) {
        t.is(req.headers.authorization, basic);
        // blobs live "elsewhere": localhost is another host name for the same server
        res.writeHead(307, { location: `http://localhost:${(req.socket.address() as AddressInfo).port}/storage${req.url}` });
        return void res.end();
      }
      t.is(req.headers.authorization, undefined);
      ranges.push(String(req.headers.range ?? 'none'));
      const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = match ? Number(match[1]) : 0;
      if (start === 0 && resets === 0) {
        resets++;
        res.writeHead(200, { 'content-length': blob.length });
        res.write(blob.subarray(0, 100_000));
        setTimeout(() => res.socket!.destroy(), 20);
        return;
      }
      res.writeHead(start ? 206 : 200, { 'content-length': blob.length - start, ...(start ? { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}) });
      res.end(blob.subarray(start));
    },
    async (host, transport) => {
      const session = new RegistrySession({ transport, host, repository: 'a', credentials: creds });
      // teach the session Basic auth up front, as a manifest fetch would
      (session as unknown as { challenge: unknown }).challenge = { scheme: 'basic', params: {} };
      const partialPath = join(dir, 'resumed.partial');
      const progress: number[] = [];
      await downloadBlob({ session, descriptor: { mediaType: 'x', digest: blobDigest, size: blob.length }, partialPath, onProgress: (n) => progress.push(n) });
      t.true(readFileSync(partialPath).equals(blob));
      t.is(ranges[0], 'none');
      t.regex(ranges[1]!, /^bytes=\d+-$/);
      t.true(Number(/\d+/.exec(ranges[1]!)![0]) >= 100_000 - 65536);
      t.is(progress[progress.length - 1], blob.length);
    },
  );
});

test('a partial file left by an earlier pull is resumed; a tampered blob fails naming its digest and leaves nothing', async (t) => {
  const ranges: string[] = [];
  let tamper = false;
  await withServer(
    (req, res) => {
      ranges.push(String(req.headers.range ?? 'none'));
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      const body = Buffer.from(blob);
      if (tamper) body[body.length - 1] ^= 0xff;
      res.writeHead(start ? 206 : 200, start ? { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {});
      res.end(body.subarray(start));
    },
    async (host, transport) => {
      const session = new RegistrySession({ transport, host, repository: 'a' });
      const descriptor = { mediaType: 'x', digest: blobDigest, size: blob.length };
      const partialPath = join(dir, 'left.partial');
      writeFileSync(partialPath, blob.subarray(0, 123_456));
      await downloadBlob({ session, descriptor, partialPath });
      t.deepEqual(ranges, ['bytes=123456-']);
      t.true(readFileSync(partialPath).equals(blob));

      tamper = true;
      const tamperedPath = join(dir, 'tampered.partial');
      await t.throwsAsync(downloadBlob({ session, descriptor, partialPath: tamperedPath }), {
        instanceOf: RegistryError,
        message: new RegExp(`blob ${blobDigest} from ${host}/a does not match its digest`),
      });
      t.false(existsSync(tamperedPath));
      // more bytes than the manifest says: refused as soon as they arrive
      await t.throwsAsync(downloadBlob({ session, descriptor: { ...descriptor, size: 10 }, partialPath: tamperedPath }), { message: /is larger than the 10 bytes/ });
      t.false(existsSync(tamperedPath));
    },
  );
});

test('an unreachable registry and a TLS failure are one line each, with the fix for TLS', async (t) => {
  const transport = new Transport({ attempts: 1 });
  try {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const session = new RegistrySession({ transport, host: `127.0.0.1:${port}`, repository: 'a' });
    await t.throwsAsync(fetchManifest(session, 'latest'), { message: `registry 127.0.0.1:${port} is unreachable: connection refused` });

    // a plain HTTP server where TLS is expected (and the registry is not insecure)
    await withServer(
      (_req, res) => res.end(),
      async (host) => {
        const strict = new RegistrySession({ transport, host, repository: 'a' });
        await t.throwsAsync(fetchManifest(strict, 'latest'), { message: new RegExp(`^TLS failure talking to ${host}: the server does not speak TLS \\(plain HTTP\\?\\); if ${host} serves plain HTTP, mark it insecure`) });
      },
    );
  } finally {
    transport.close();
  }
});
