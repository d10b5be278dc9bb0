// Two test OpenID Connect issuers for GpuCommons' sign-in tests, built on oidc-provider (an OpenID-certified
// implementation): issuer A ("University A", http://127.0.0.1:9460) and issuer B ("University B", :9461).
//
// Users: any login name signs in with any non-empty password (a test provider). The login decides the claims:
//   name            sub=name, email=name@<issuer's domain>, email_verified, name, preferred_username
//   name@domain     sub=name@domain, email=name@domain (so issuer B can present an address of issuer A's domain)
// Issuer A also sends the affiliation claim 'org' ("University A"); issuer B sends none (the server's email-domain
// table places its people).
//
// Clients (on both issuers):
//   gpuc-portal      confidential (secret gpuc-portal-secret), authorization code + PKCE, loopback redirect URIs
//                    http://127.0.0.1:<any port>/signin-oidc/<id> (RFC 8252 loopback: any port)
//   gpuc-cli         public, the device authorization grant (gpuc login)
//   gpuc-cli-short   public, device grant, ID tokens that expire 2 s after issue (the expired-token test)
//   other-app        public, device grant: another application's tokens (the wrong-audience test)
// Consent is granted without a prompt. Interactions (the login form) are plain HTML forms: input#login,
// input#password, button#sign-in.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const host = process.env.GPUC_OIDC_HOST || '127.0.0.1';
const issuers = [
  { id: 'a', port: Number(process.env.GPUC_OIDC_PORT_A || 9460), domain: 'uni-a.ac.kr', org: 'University A', title: 'University A' },
  { id: 'b', port: Number(process.env.GPUC_OIDC_PORT_B || 9461), domain: 'uni-b.ac.kr', org: null, title: 'University B' },
];

const redirectIds = ['a', 'b', 'uni-a', 'uni-b', 'other'];
const portalRedirects = redirectIds.flatMap((id) => [`http://127.0.0.1/signin-oidc/${id}`, `http://localhost/signin-oidc/${id}`]);
const deviceGrant = 'urn:ietf:params:oauth:grant-type:device_code';
const clients = [
  {
    client_id: 'gpuc-portal', client_secret: 'gpuc-portal-secret', application_type: 'native',
    redirect_uris: portalRedirects, grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  },
  ...['gpuc-cli', 'gpuc-cli-short', 'other-app'].map((client_id) => ({
    client_id, application_type: 'native', token_endpoint_auth_method: 'none',
    grant_types: [deviceGrant], response_types: [], redirect_uris: [],
  })),
];

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const page = (title, body) => `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>${body}</body></html>`;

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { data += c; if (data.length > 65536) reject(new Error('form too large')); });
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(data))));
    req.on('error', reject);
  });
}

function claimsFor(issuer, login) {
  const at = login.indexOf('@');
  const email = at > 0 ? login : `${login}@${issuer.domain}`;
  const name = at > 0 ? login.slice(0, at) : login;
  const claims = { sub: login, email, email_verified: true, name, preferred_username: name };
  if (issuer.org) claims.org = issuer.org;
  return claims;
}

function configuration(issuer) {
  const jwk = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  return {
    clients,
    jwks: { keys: [{ ...jwk, kid: `test-${issuer.id}-${crypto.randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], org: ['org'] },
    scopes: ['openid', 'email', 'profile', 'org', 'offline_access'],
    // ID tokens carry the scope's claims (the CLI's device flow has no userinfo call on the server's side).
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      // Plain pages without outside resources: headless browsers and HTTP clients in the tests drive them.
      deviceFlow: {
        enabled: true,
        userCodeInputSource: async (ctx, form, out, err) => {
          ctx.body = page('Enter the code', `<h1>Enter the code shown by your device</h1>${err ? `<p id="error">the code is not valid (${esc(err.name || 'error')})</p>` : ''}${form}<button id="continue" type="submit" form="op.deviceInputForm">Continue</button>`);
        },
        userCodeConfirmSource: async (ctx, form, client, deviceInfo, userCode) => {
          ctx.body = page('Confirm the device', `<h1>Sign in <b id="client">${esc(client.clientId)}</b> with code <code id="user-code">${esc(userCode)}</code>?</h1>${form}<button id="confirm" type="submit" form="op.deviceConfirmForm">Continue</button> <button id="abort" type="submit" form="op.deviceConfirmForm" value="yes" name="abort">Abort</button>`);
        },
        successSource: async (ctx) => {
          ctx.body = page('Signed in', '<h1 id="device-done">Signed in: return to your device</h1>');
        },
      },
      revocation: { enabled: true },
      introspection: { enabled: true },
    },
    ttl: {
      IdToken: (ctx, token, client) => (client?.clientId === 'gpuc-cli-short' ? 2 : 3600),
      AccessToken: 3600, AuthorizationCode: 60, DeviceCode: 600, Grant: 3600, Interaction: 600, Session: 3600,
    },
    findAccount: (ctx, id) => ({ accountId: id, claims: () => claimsFor(issuer, id) }),
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('error', `<h1 id="error">${esc(out.error)}</h1><p id="error-description">${esc(out.error_description || '')}</p>`);
    },
  };
}

async function interaction(provider, issuer, req, res) {
  const details = await provider.interactionDetails(req, res);
  const uid = details.uid;
  if (details.prompt.name === 'consent') {
    // Consent is not asked: every client is the center's own.
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const d = details.prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) grant.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  if (req.method === 'GET') {
    const client = await provider.Client.find(details.params.client_id);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(page(`${issuer.title}: sign in`, `<h1>${esc(issuer.title)}</h1><p>Sign in to <b id="client">${esc(client?.clientId || '')}</b></p>
<form method="post" action="/interaction/${esc(uid)}">
<label for="login">Login</label> <input id="login" name="login" autocomplete="username" required>
<label for="password">Password</label> <input id="password" name="password" type="password" required>
<button id="sign-in" type="submit">Sign in</button></form>`));
    return;
  }
  const form = await readForm(req);
  const login = (form.login || '').trim();
  if (!login || !form.password || login.length > 200 || /[\s<>"']/.test(login)) {
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'a login and a password are required' }, { mergeWithLastSubmission: false });
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
}

for (const issuer of issuers) {
  const url = `http://${host}:${issuer.port}`;
  const provider = new Provider(url, configuration(issuer));
  provider.on('server_error', (ctx, err) => console.error(`[${issuer.id}] server_error`, err));
  const handler = provider.callback();
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(provider, issuer, req, res).catch((err) => {
        res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
        res.end(page('error', `<h1 id="error">interaction failed</h1><p>${esc(err.message)}</p>`));
      });
      return;
    }
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return;
    }
    handler(req, res);
  });
  server.listen(issuer.port, host, () => console.log(`issuer ${issuer.id} (${issuer.title}) at ${url}`));
}
