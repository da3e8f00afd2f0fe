/**
 * Authentication with one registry, for one repository: the request is sent
 * as it is; a 401 brings a challenge (WWW-Authenticate), which is answered
 * once (Basic: the credentials; Bearer: a token from the realm, anonymous or
 * with the credentials, for the scope "repository:NAME:pull"); later requests
 * carry the answer up front. Tokens are cached per scope until they expire.
 */
import type { IncomingMessage } from 'node:http';
import type { Credentials } from './auth-file.js';
import { parseChallenges, type Challenge } from './challenge.js';
import { RegistryError, summarizeErrorBody, parseErrorBody } from './errors.js';
import { readBody, type Request, type Transport } from './transport.js';

export interface SessionOptions {
  transport: Transport;
  /** registry host as people name it ("docker.io", "localhost:5000") */
  host: string;
  /** repository inside it ("library/alpine"); empty for login's /v2/ check */
  repository: string;
  credentials?: Credentials | undefined;
  /** where the credentials came from ("--creds", a file): for error messages */
  credentialsSource?: string | undefined;
}

interface Token {
  value: string;
  expiresAt: number;
}

export class RegistrySession {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, Token>();

  constructor(private readonly options: SessionOptions) {}

  get host(): string {
    return this.options.host;
  }

  get repository(): string {
    return this.options.repository;
  }

  get transport(): Transport {
    return this.options.transport;
  }

  private get pullScope(): string {
    return this.options.repository ? `repository:${this.options.repository}:pull` : '';
  }

  /** A request on this registry's API (path starting with /v2/), authenticated as needed. */
  async request(request: Omit<Request, 'host'>): Promise<IncomingMessage> {
    const send = async () => {
      const authorization = await this.authorization(false);
      return this.options.transport.send({ ...request, host: this.options.host, headers: { ...request.headers, ...(authorization ? { authorization } : {}) } });
    };
    let response = await send();
    if (response.statusCode !== 401) return response;
    const challenges = parseChallenges(response.headers['www-authenticate']);
    const body = await readBody(response).catch(() => Buffer.alloc(0));
    const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (!challenge) throw new RegistryError('unauthorized', `${this.options.host} refused access (${summarizeErrorBody(401, body.toString('utf8'))}) and said nothing about how to authenticate`);
    const firstChallenge = this.challenge === undefined;
    const changed = !sameChallenge(this.challenge, challenge);
    this.challenge = challenge;
    if (firstChallenge || changed || challenge.scheme === 'bearer') {
      // The first 401 teaches the scheme; for Bearer a cached token may also just have expired.
      this.tokens.clear();
      if (challenge.scheme === 'bearer') await this.fetchToken(challenge);
      response = await send();
      if (response.statusCode !== 401) return response;
      const retryBody = await readBody(response).catch(() => Buffer.alloc(0));
      throw this.refused(challenge, retryBody.toString('utf8'));
    }
    throw this.refused(challenge, body.toString('utf8'));
  }

  /**
   * Login's check: GET /v2/ with the credentials, through the whole flow.
   * Resolves when the registry accepts them; throws 'unauthorized' otherwise.
   */
  async checkLogin(): Promise<void> {
    const response = await this.request({ method: 'GET', url: '/v2/' });
    const body = await readBody(response).catch(() => Buffer.alloc(0));
    if (response.statusCode === 200) return;
    if (response.statusCode === 404) throw new RegistryError('server', `${this.options.host} does not serve the registry API (/v2/ answers 404)`);
    throw new RegistryError('server', `${this.options.host} answered /v2/ with ${summarizeErrorBody(response.statusCode ?? 0, body.toString('utf8'))}`);
  }

  private async authorization(forceRefresh: boolean): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') {
      const creds = this.options.credentials;
      return creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}` : undefined;
    }
    const cached = this.tokens.get(this.pullScope);
    if (cached && !forceRefresh && cached.expiresAt > Date.now()) return `Bearer ${cached.value}`;
    const token = await this.fetchToken(challenge);
    return `Bearer ${token}`;
  }

  private async fetchToken(challenge: Challenge): Promise<string> {
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryError('server', `${this.options.host} asked for a token without saying where to get one (no realm)`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch (error) {
      throw new RegistryError('server', `${this.options.host} gave an invalid token realm "${realm}"`, { cause: error });
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    if (this.pullScope) url.searchParams.set('scope', this.pullScope);
    const creds = this.options.credentials;
    const headers: Record<string, string> = {};
    if (creds) {
      url.searchParams.set('account', creds.username);
      headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`;
    }
    const response = await this.options.transport.send({ method: 'GET', url: url.toString(), headers, host: url.host });
    const body = (await readBody(response)).toString('utf8');
    const status = response.statusCode ?? 0;
    if (status === 401 || status === 403) {
      if (creds) throw this.wrongCredentials();
      throw new RegistryError('unauthorized', `${this.options.host} refused an anonymous token: log in with nook login ${this.options.host} or pass --creds`);
    }
    if (status !== 200) throw new RegistryError('server', `the token service of ${this.options.host} (${url.host}) answered ${summarizeErrorBody(status, body)}`);
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch (error) {
      throw new RegistryError('server', `the token service of ${this.options.host} answered something that is not JSON`, { cause: error });
    }
    const token = typeof parsed.token === 'string' && parsed.token ? parsed.token : typeof parsed.access_token === 'string' ? parsed.access_token : '';
    if (!token) throw new RegistryError('server', `the token service of ${this.options.host} answered without a token`);
    const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60;
    // refresh a little early, so a token does not expire between the check and the request
    this.tokens.set(this.pullScope, { value: token, expiresAt: Date.now() + Math.max(lifetime - 10, lifetime / 2) * 1000 });
    return token;
  }

  private wrongCredentials(): RegistryError {
    const source = this.options.credentialsSource ? ` (from ${this.options.credentialsSource})` : '';
    return new RegistryError('unauthorized', `wrong username or password for ${this.options.host}${source}`);
  }

  private refused(challenge: Challenge, body: string): RegistryError {
    const host = this.options.host;
    if (challenge.scheme === 'basic') {
      if (this.options.credentials) return this.wrongCredentials();
      return new RegistryError('unauthorized', `${host} requires authentication: log in with nook login ${host} or pass --creds`);
    }
    // A token was granted but does not open this repository: Docker Hub answers so for names that do not exist.
    const codes = parseErrorBody(body).map((e) => e.code);
    const what = this.options.repository ? `${host}/${this.options.repository}` : host;
    const hint = this.options.credentials ? '' : ` (or it needs credentials: nook login ${host})`;
    return new RegistryError('denied', `access to ${what} denied: the repository does not exist${hint}${codes.length ? ` [${codes.join(', ')}]` : ''}`);
  }
}

function sameChallenge(a: Challenge | undefined, b: Challenge): boolean {
  return a !== undefined && a.scheme === b.scheme && a.params.realm === b.params.realm && a.params.service === b.params.service;
}
