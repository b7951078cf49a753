// A third-party, OpenID-Certified provider run locally: `oidc-provider` (panva),
// configured the way an operator's Auth0 tenant or Keycloak realm would be:
//
// - one confidential client for portcullis (client_secret_basic), PKCE required;
// - refresh tokens, rotated on every use (reuse of a rotated one revokes the grant);
// - RP-initiated logout, back-channel logout (with sid), token revocation;
// - short access-token lifetimes so the proxy must refresh during a test;
// - users who sign in with a password on a small login page of our own, with
//   roles in a namespaced claim (`https://app.example.com/roles`, as Auth0
//   Actions set them) and `groups` (shape "auth0"), or in `realm_access.roles`
//   (shape "keycloak").
//
// It runs in the test's own process, so the test reads the provider's events
// (refreshes, rotations, back-channel deliveries) directly.
//
// A second instance plays a third-party OAuth service for connected accounts
// (SPEC §13, `scenarios/connections.test.js`): its client registered for
// `/_auth/connect/NAME/callback`, no logout URIs, on 127.0.0.2 so that its
// cookies never mix with the login provider's on `localhost`.

import http from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';

import fs from 'node:fs';
import { createRequire } from 'node:module';

import Provider from 'oidc-provider';

const OP_VERSION = (() => {
  try {
    const require = createRequire(import.meta.url);
    const main = require.resolve('oidc-provider');
    const pkg = main.slice(0, main.lastIndexOf('node_modules/oidc-provider/') + 'node_modules/oidc-provider/'.length);
    return JSON.parse(fs.readFileSync(`${pkg}package.json`, 'utf8')).version;
  } catch {
    return '';
  }
})();

export const ROLES_CLAIM = 'https://app.example.com/roles';

// The directory. Passwords are checked; anything else is refused.
export const USERS = {
  alice: {
    password: 'alice-password',
    name: 'Alice Admin',
    email: 'alice@example.com',
    roles: ['admin', 'user'],
    groups: ['engineering'],
  },
  bob: {
    password: 'bob-password',
    name: 'Bob User',
    email: 'bob@example.com',
    roles: ['user'],
    groups: ['sales'],
  },
};

/** Claims of `id` in the given shape (where the roles sit). */
function claimsOf(id, shape) {
  const u = USERS[id];
  const base = {
    sub: id,
    name: u.name,
    preferred_username: id,
    email: u.email,
    email_verified: true,
    groups: u.groups,
  };
  if (shape === 'keycloak') {
    // Keycloak's realm roles, including its default ones.
    base.realm_access = { roles: ['offline_access', 'uma_authorization', ...u.roles] };
  } else {
    base[ROLES_CLAIM] = u.roles;
  }
  return base;
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: system-ui, "DejaVu Sans", sans-serif; background: #eef1f5; margin: 0; }
  .card { max-width: 360px; margin: 64px auto; background: #fff; border-radius: 10px;
          box-shadow: 0 2px 12px rgba(0,0,0,.12); padding: 28px 32px; }
  .brand { font-weight: 700; color: #3b4a6b; letter-spacing: .04em; font-size: 13px; text-transform: uppercase; }
  h1 { font-size: 22px; margin: 8px 0 4px; color: #1c2333; }
  p.sub { color: #5a6478; margin: 0 0 20px; font-size: 14px; }
  label { display: block; font-size: 13px; color: #39414f; margin: 12px 0 4px; }
  input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: 10px;
          border: 1px solid #c4cad4; border-radius: 6px; font-size: 15px; }
  button { margin-top: 20px; width: 100%; padding: 11px; border: 0; border-radius: 6px;
           background: #2f5bd3; color: #fff; font-size: 15px; font-weight: 600; cursor: pointer; }
  button.secondary { margin-top: 8px; background: #fff; color: #2f5bd3; border: 1px solid #c4cad4; }
  .error { background: #fdecec; color: #9b1c1c; padding: 8px 10px; border-radius: 6px; font-size: 14px; }
  .hint { color: #7a8394; font-size: 12px; margin-top: 16px; }
</style></head><body><div class="card">${body}</div></body></html>`;
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage({
  brand, uid, clientName, error, login,
}) {
  return page(`Sign in · ${escape(brand)}`, `
  <div class="brand">${escape(brand)}</div>
  <h1>Sign in</h1>
  <p class="sub">to continue to <strong>${escape(clientName)}</strong></p>
  ${error ? `<div class="error" role="alert">${escape(error)}</div>` : ''}
  <form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
    <label for="username">Username</label>
    <input id="username" name="username" type="text" value="${escape(login || '')}" autofocus>
    <label for="password">Password</label>
    <input id="password" name="password" type="password">
    <button type="submit">Sign in</button>
    <button type="submit" name="cancel" value="1" class="secondary">Cancel</button>
  </form>
  <p class="hint">oidc-provider ${escape(OP_VERSION)} · portcullis end-to-end tests</p>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * Starts the provider on a free port of `host` (default 127.0.0.1), named by
 * `issuerHost` (default `localhost`, so the provider is another site than the
 * proxy on 127.0.0.1, as a real provider is).
 *
 * @param {object} o
 * @param {string} o.publicUrl  the proxy's public origin (redirect URIs hang off it)
 * @param {string} [o.shape]    "auth0" (namespaced roles + groups, in the ID token)
 *                              or "keycloak" (realm_access.roles, userinfo only)
 * @param {number|Function} [o.accessTokenTtl] seconds, or oidc-provider's
 *                              `(ctx, token, client) => seconds`
 * @param {string[]} [o.redirectUris] the client's redirect URIs (default: the
 *                              proxy's login callback)
 * @param {boolean} [o.logoutUris] register the proxy's post-logout and
 *                              back-channel logout URIs (a login provider does)
 * @param {string} [o.brand]    the name on the sign-in page
 */
export async function startProvider({
  publicUrl,
  shape = 'auth0',
  accessTokenTtl = 600,
  clientId = 'portcullis',
  clientSecret = `secret-${randomUUID()}`,
  host = '127.0.0.1',
  issuerHost = 'localhost',
  redirectUris = [`${publicUrl}/_auth/callback`],
  logoutUris = true,
  brand = 'Example IdP',
} = {}) {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, host, resolve));
  const { port } = server.address();
  const issuer = `http://${issuerHost}:${port}`;
  // While true, every request is answered 503 (`setDown`): an outage.
  let isDown = false;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `k-${randomUUID().slice(0, 8)}`, use: 'sig', alg: 'RS256' };

  const events = [];
  const record = (name, detail = {}) => events.push({ at: Date.now(), name, ...detail });

  // Auth0 shape: the roles are claims of the `openid` scope, so they are in the
  // ID token too. Keycloak shape: they come with the `profile` scope, and with
  // conformIdTokenClaims (below) such claims are only served by userinfo.
  const claims = shape === 'keycloak'
    ? {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'groups', 'realm_access'],
    }
    : {
      openid: ['sub', 'groups', ROLES_CLAIM],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    };

  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      client_name: 'Portcullis demo app',
      redirect_uris: redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...(logoutUris ? {
        post_logout_redirect_uris: [`${publicUrl}/`],
        backchannel_logout_uri: `${publicUrl}/_auth/backchannel-logout`,
        backchannel_logout_session_required: true,
      } : {}),
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomUUID(), randomUUID()] },
    pkce: { required: () => true },
    // Auth0 puts custom claims in the ID token; Keycloak's roles here only come
    // from userinfo, so both of the proxy's paths (ID token, userinfo) are used.
    conformIdTokenClaims: shape === 'keycloak',
    claims,
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page('Sign out · Example IdP', `
  <div class="brand">Example IdP</div>
  <h1>Sign out?</h1>
  <p class="sub">Do you want to sign out of Example IdP?</p>
  ${form}
  <button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>`);
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.body = page('Signed out · Example IdP', '<div class="brand">Example IdP</div><h1>Signed out</h1>');
        },
      },
    },
    // Refresh tokens for the confidential client even without prompt=consent.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    ttl: {
      AccessToken: accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // oidc-provider refuses outgoing requests (back-channel logout) to special-use
    // addresses such as loopback (SSRF protection); here the relying party is on
    // loopback by design, so its requests go out without that guard.
    fetch: (url, { dispatcher, ...options }) => globalThis.fetch(url, options),
    // A first-party app: consent is implied, as operators configure it.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        const existing = await ctx.oidc.provider.Grant.find(grantId);
        if (existing) return existing;
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid offline_access email profile');
      await grant.save();
      return grant;
    },
    findAccount: async (_ctx, sub) => {
      if (!USERS[sub]) return undefined;
      return { accountId: sub, claims: async () => claimsOf(sub, shape) };
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page(`Error · ${escape(brand)}`, `<div class="brand">${escape(brand)}</div><h1>Something went wrong</h1>
        ${Object.entries(out).map(([k, v]) => `<p><strong>${escape(k)}</strong>: ${escape(v)}</p>`).join('')}`);
    },
  });
  provider.proxy = false;

  const accountOf = (ctx) => ctx.oidc?.entities?.RefreshToken?.accountId
    ?? ctx.oidc?.entities?.AuthorizationCode?.accountId;
  provider.on('grant.success', (ctx) => {
    record('grant.success', { grantType: ctx.oidc.params.grant_type, client: ctx.oidc.client?.clientId, accountId: accountOf(ctx) });
  });
  provider.on('grant.error', (ctx, err) => {
    record('grant.error', {
      grantType: ctx.oidc?.params?.grant_type, accountId: accountOf(ctx), error: err.error, description: err.error_description,
    });
  });
  provider.on('refresh_token.consumed', (token) => record('refresh_token.consumed', { jti: token.jti, accountId: token.accountId, grantId: token.grantId }));
  provider.on('refresh_token.saved', (token) => record('refresh_token.saved', { jti: token.jti, accountId: token.accountId, grantId: token.grantId }));
  provider.on('access_token.saved', (token) => record('access_token.saved', { jti: token.jti, accountId: token.accountId, grantId: token.grantId }));
  provider.on('grant.revoked', (_ctx, grantId) => record('grant.revoked', { grantId }));
  provider.on('refresh_token.destroyed', (token) => record('refresh_token.destroyed', { jti: token.jti }));
  provider.on('revocation.error', (_ctx, err) => record('revocation.error', { error: err.error }));
  provider.on('end_session.success', () => record('end_session.success'));
  provider.on('backchannel.success', (_ctx, client, accountId, sid) => record('backchannel.success', { client: client.clientId, accountId, sid }));
  provider.on('backchannel.error', (_ctx, err, client, accountId, sid) => record('backchannel.error', { client: client.clientId, accountId, sid, error: String(err?.message ?? err) }));
  provider.on('interaction.started', (_ctx, prompt) => record('interaction.started', { prompt: prompt.name }));
  provider.on('userinfo.error', (_ctx, err) => record('userinfo.error', { error: err.error }));
  provider.on('server_error', (_ctx, err) => record('server_error', { error: String(err?.stack ?? err) }));
  provider.on('authorization.error', (_ctx, err) => record('authorization.error', { error: err.error, description: err.error_description }));

  const oidcCallback = provider.callback();

  server.on('request', async (req, res) => {
    if (isDown) {
      record('down.refused', { path: req.url });
      res.statusCode = 503;
      res.setHeader('content-type', 'text/plain');
      return res.end('service unavailable\n');
    }
    try {
      const url = new URL(req.url, issuer);
      const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
      if (!m) return oidcCallback(req, res);
      const details = await provider.interactionDetails(req, res);
      const clientName = (await provider.Client.find(details.params.client_id))?.clientName ?? details.params.client_id;
      res.setHeader('cache-control', 'no-store');
      if (req.method === 'GET' && !m[2]) {
        if (details.prompt.name !== 'login') {
          // Consent is implied by loadExistingGrant; anything else ends the interaction.
          return provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
        }
        record('signin.page');
        res.setHeader('content-type', 'text/html; charset=utf-8');
        return res.end(loginPage({ brand, uid: details.uid, clientName }));
      }
      if (req.method === 'POST' && m[2]) {
        const form = await readForm(req);
        if (form.get('cancel')) {
          record('signin.cancelled');
          return provider.interactionFinished(req, res, {
            error: 'access_denied', error_description: 'the user cancelled the sign-in',
          }, { mergeWithLastSubmission: false });
        }
        const username = form.get('username') ?? '';
        const user = USERS[username];
        if (!user || form.get('password') !== user.password) {
          record('signin.failed', { username });
          res.statusCode = 200;
          res.setHeader('content-type', 'text/html; charset=utf-8');
          return res.end(loginPage({
            brand, uid: details.uid, clientName, login: username, error: 'Wrong username or password.',
          }));
        }
        record('signin.ok', { username });
        return provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
      }
      res.statusCode = 405;
      return res.end();
    } catch (err) {
      record('interaction.error', { error: String(err?.message ?? err) });
      res.statusCode = 400;
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(page(`Error · ${escape(brand)}`, `<h1>Sign-in failed</h1><p>${escape(err?.message ?? err)}</p>`));
    }
  });

  return {
    issuer,
    port,
    clientId,
    clientSecret,
    provider,
    events,
    /** Events named `name`, optionally filtered further. */
    eventsNamed(name, pred = () => true) {
      return events.filter((e) => e.name === name && pred(e));
    },
    /** While `down`, every request is answered 503, as by a load balancer with no backend. */
    setDown(down) {
      isDown = down;
    },
    async stop() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
