/**
 * The configuration schema: one declaration gives validation, the TypeScript type, the
 * commented default file (`commons --generate-config`) and docs/configuration.md.
 */
import { Type, type Static } from 'typebox';
import { DEFAULT_ROOM_VERSION, ROOM_VERSIONS } from '../core/room-versions.js';

/** One token bucket class; each field has its own default so a single key can be overridden. */
const rateLimitClass = (description: string, perSecond: number, burst: number) =>
  Type.Object(
    {
      per_second: Type.Number({
        exclusiveMinimum: 0,
        default: perSecond,
        description: 'Tokens added to the bucket per second.',
      }),
      burst: Type.Integer({
        minimum: 1,
        default: burst,
        description: 'Bucket size: requests allowed at once.',
      }),
    },
    { additionalProperties: false, default: {}, description },
  );

export const ConfigSchema = Type.Object(
  {
    server_name: Type.String({
      minLength: 1,
      default: 'localhost',
      description:
        "The domain of user IDs (`@alice:<server_name>`): a DNS name, an IPv4 address or a bracketed IPv6 one, then `:port` if any (the spec's grammar; anything else is refused at start). Recorded in the database at its first start; a start with another name is refused.",
    }),
    public_baseurl: Type.Union([Type.String({ pattern: '^https?://' }), Type.Null()], {
      default: null,
      description:
        'The URL clients reach this server at, for `/.well-known/matrix/client`. Null answers with the scheme and host the request came to (through a proxy: set `http.trust_proxy`).',
    }),
    data_dir: Type.String({
      minLength: 1,
      default: './data',
      description:
        'Where the SQLite database, the generated secrets (`signing.key`, `token.key`) and uploaded media (`media/`) live.',
    }),
    listen: Type.Object(
      {
        host: Type.String({
          minLength: 1,
          default: '127.0.0.1',
          description: 'Address to listen on.',
        }),
        port: Type.Integer({
          minimum: 0,
          maximum: 65535,
          default: 8008,
          description: 'TCP port (0 picks a free one).',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Where the client API listens.' },
    ),
    database: Type.Object(
      {
        url: Type.Union([Type.String({ pattern: '^(sqlite:|postgres(ql)?://)' }), Type.Null()], {
          default: null,
          description:
            '`sqlite:<path>` or `postgres://user@host:port/db`. Null means `sqlite:<data_dir>/commons.db`.',
        }),
        pool_size: Type.Integer({
          minimum: 1,
          maximum: 200,
          default: 10,
          description: 'PostgreSQL connections per process (SQLite always uses one).',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Storage.' },
    ),
    rooms: Type.Object(
      {
        default_version: Type.Union(
          // As a string or (unquoted in YAML) a number.
          [
            ...Object.keys(ROOM_VERSIONS).map((v) => Type.Literal(v)),
            ...Object.keys(ROOM_VERSIONS).map((v) => Type.Literal(Number(v))),
          ],
          {
            default: DEFAULT_ROOM_VERSION,
            description:
              "The version of rooms created without `room_version` (also the `m.room_versions` capability's default): 10, 11 or 12. 10, the spec's suggested default (MSC3904), is the one every client can handle; room version 12 IDs have no server part, which some clients (nheko 0.11, matrix-nio 0.20) cannot parse. Every supported version can still be asked for.",
          },
        ),
      },
      { additionalProperties: false, default: {}, description: 'Rooms.' },
    ),
    registration: Type.Object(
      {
        enabled: Type.Boolean({
          default: true,
          description: 'Open registration through `/register` with the `m.login.dummy` flow.',
        }),
        shared_secret: Type.Union([Type.String({ minLength: 16 }), Type.Null()], {
          default: null,
          description:
            'Enables `/_synapse/admin/v1/register` (nonce + HMAC) and `commons register-user`. Null disables it.',
        }),
        requires_token: Type.Boolean({
          default: false,
          description:
            'Registration through `/register` only with a registration token (the `m.login.registration_token` stage; tokens are made with the admin API). Shared-secret registration and the admin API still create accounts.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Account creation.' },
    ),
    rate_limits: Type.Object(
      {
        enabled: Type.Boolean({
          default: true,
          description: 'Token-bucket rate limits per user (or per IP when anonymous).',
        }),
        classes: Type.Object(
          {
            default: rateLimitClass('Endpoints that name no class of their own.', 20, 100),
            login: rateLimitClass(
              'Logging in, and password checks (e.g. changing the password).',
              0.2,
              5,
            ),
            registration: rateLimitClass('Registration, open or shared-secret.', 0.2, 5),
            message: rateLimitClass('Sending events into rooms.', 5, 20),
            membership: rateLimitClass(
              'Joining, leaving, inviting and other membership changes.',
              2,
              20,
            ),
            query: rateLimitClass('Lookups such as profiles.', 20, 100),
            mutual_rooms: rateLimitClass(
              '`/mutual_rooms` in all its paths, per requester.',
              20,
              100,
            ),
            media_upload: rateLimitClass(
              'Media uploads (`/upload`, `/create`), per uploader.',
              1,
              10,
            ),
          },
          {
            additionalProperties: false,
            default: {},
            description: 'Buckets by class of endpoint; each route names its class.',
          },
        ),
      },
      { additionalProperties: false, default: {}, description: 'Rate limiting.' },
    ),
    mutual_rooms: Type.Object(
      {
        batch_size: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 100,
          description: 'Rooms per `/mutual_rooms` page.',
        }),
        token_ttl_seconds: Type.Integer({
          minimum: 1,
          default: 3600,
          description:
            "How long a `next_batch` token stays valid. Start-up warns below 600, the spec's minimum.",
        }),
        multi_user: Type.Boolean({
          default: false,
          description:
            'Accept several `user_id`s (rooms shared by the requester and all of them), as MSC2666 foresees. Advertised as `org.commons.msc2666.multi_user`.',
        }),
        cache_idle_seconds: Type.Integer({
          minimum: 60,
          default: 604800,
          description:
            'The per-pair index behind `/mutual_rooms` is dropped for pairs nobody asked about for this long.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Mutual rooms (MSC2666).' },
    ),
    media: Type.Object(
      {
        max_upload_bytes: Type.Integer({
          minimum: 1,
          default: 52428800,
          description:
            'Largest file accepted by `/upload` (advertised as `m.upload.size`); larger ones get 413 M_TOO_LARGE.',
        }),
        max_thumbnail_source_bytes: Type.Integer({
          minimum: 1,
          default: 33554432,
          description:
            'Larger images are not thumbnailed (413 M_TOO_LARGE); images over 100 megapixels never are.',
        }),
        legacy_unauthenticated: Type.Boolean({
          default: false,
          description:
            'Also serve the deprecated unauthenticated `/_matrix/media/v3` (and r0) `download`, `thumbnail` and `config` endpoints, for clients without authenticated media (spec v1.11). Off: those paths answer 404 M_NOT_FOUND, as a server that froze them.',
        }),
        max_awaited_uploads: Type.Integer({
          minimum: 1,
          default: 32,
          description:
            'Media IDs from `/create` a user may hold awaiting their upload; more get 429 M_LIMIT_EXCEEDED.',
        }),
        unused_expiry_seconds: Type.Integer({
          minimum: 60,
          default: 86400,
          description: 'How long an ID from `/create` waits for its upload.',
        }),
        url_preview_enabled: Type.Boolean({
          default: false,
          description:
            'Serve `/preview_url`: this server fetches the pages users link to (off: 404 M_UNRECOGNIZED). Only http(s), never from loopback, private, link-local, shared, multicast or reserved addresses (checked on every address DNS answers, for every redirect).',
        }),
        url_preview_ip_range_deny: Type.Array(Type.String({ minLength: 1 }), {
          default: [],
          description:
            'Address ranges (CIDR, or single addresses) previews never fetch from, besides the built-in private and reserved ones.',
        }),
        url_preview_ip_range_allow: Type.Array(Type.String({ minLength: 1 }), {
          default: [],
          description:
            'Address ranges previews may fetch from even when denied (an intranet); use with care.',
        }),
        url_preview_max_bytes: Type.Integer({
          minimum: 1024,
          default: 10485760,
          description: 'Largest page or image a preview reads; larger ones fail (502 M_UNKNOWN).',
        }),
        url_preview_timeout_seconds: Type.Integer({
          minimum: 1,
          maximum: 120,
          default: 10,
          description: 'How long fetching a page (redirects included) or its image may take.',
        }),
        url_preview_cache_seconds: Type.Integer({
          minimum: 0,
          default: 3600,
          description: 'How long a preview is kept and served again without fetching.',
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description:
          'The media repository; files are kept under `<data_dir>/media`, by content hash.',
      },
    ),
    user_directory: Type.Object(
      {
        search_all_users: Type.Boolean({
          default: false,
          description:
            '`/user_directory/search` finds every local user; otherwise only users who share a room with the requester or are in a public room.',
        }),
        inline_reach_max_members: Type.Integer({
          minimum: 0,
          default: 100,
          description:
            "Rooms of up to this many joined members have their members' directory reach (whether strangers may find them) moved in the join rule change's own transaction; bigger rooms' members are moved just after, in pages. Meanwhile a room that stopped being public hides its members from strangers at once, and one made public shows them only once moved. 0: always after.",
        }),
      },
      { additionalProperties: false, default: {}, description: 'The user directory.' },
    ),
    presence: Type.Object(
      {
        sync_timeout_seconds: Type.Integer({
          minimum: 1,
          default: 30,
          description:
            'A local user with no `/sync` running or ended (with `set_presence` other than `offline`) and no activity for this long goes offline: their client has stopped.',
        }),
        idle_timeout_seconds: Type.Integer({
          minimum: 1,
          default: 300,
          description:
            'A local user online with no activity (a sent event, a `/sync` with `set_presence=online`, a PUT of `online`) for this long goes unavailable.',
        }),
        currently_active_seconds: Type.Integer({
          minimum: 1,
          default: 60,
          description:
            "A local user's `currently_active` turns false once their last activity is this old (activity is recorded at most every quarter of it per user and process).",
        }),
        remote_timeout_seconds: Type.Integer({
          minimum: 1,
          default: 1800,
          description:
            "Another server's user of whom that server told nothing for this long goes offline (servers send their online users' presence again before: Synapse every 25 minutes, Commons every `federation.presence_refresh_seconds`).",
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description: "Presence time-outs (the defaults are Synapse's).",
      },
    ),
    auth: Type.Object(
      {
        allow_query_token: Type.Boolean({
          default: true,
          description:
            'Accept the access token as an `access_token` query parameter (deprecated in the spec, still sent by older and Python clients); the Authorization header is always accepted. Tokens are never written to logs either way.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Access tokens.' },
    ),
    http: Type.Object(
      {
        max_body_bytes: Type.Integer({
          minimum: 1024,
          default: 1048576,
          description: 'Largest request body accepted; larger ones get 413 M_TOO_LARGE.',
        }),
        trust_proxy: Type.Boolean({
          default: false,
          description: 'Take the client address from X-Forwarded-For (behind a reverse proxy).',
        }),
        fast_reads: Type.Boolean({
          default: true,
          description:
            'Answer the hottest reads (mutual_rooms pages, /joined_members and /joined_rooms) straight from memory before the web framework routes them, when the session, query and page are at hand; every other request, and every error, goes through the framework. Off: every request does.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'HTTP server.' },
    ),
    retention: Type.Object(
      {
        enabled: Type.Boolean({
          default: false,
          description:
            "Purge rooms' history older than their lifetime (`m.room.retention` `max_lifetime`, or the default below) in the background.",
        }),
        default_max_lifetime_seconds: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
          default: null,
          description: 'Lifetime of rooms without `m.room.retention`; null: kept for ever.',
        }),
        allowed_lifetime_min_seconds: Type.Integer({
          minimum: 0,
          default: 0,
          description: "A room's own lifetime is raised to at least this.",
        }),
        allowed_lifetime_max_seconds: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
          default: null,
          description: "A room's own lifetime is cut to at most this; null: no bound.",
        }),
        purge_interval_seconds: Type.Integer({
          minimum: 1,
          default: 3600,
          description: 'How often every room is visited.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Room retention (docs/admin.md).' },
    ),
    server_notices: Type.Object(
      {
        system_mxid_localpart: Type.Union(
          [Type.String({ minLength: 1, maxLength: 200 }), Type.Null()],
          {
            default: null,
            description:
              'Localpart of the user server notices come from (made on first use); null: server notices are off and `send_server_notice` answers 400.',
          },
        ),
        system_mxid_display_name: Type.Union([Type.String({ maxLength: 256 }), Type.Null()], {
          default: null,
          description: "The system user's display name (null: its localpart).",
        }),
        system_mxid_avatar_url: Type.Union([Type.String({ maxLength: 1024 }), Type.Null()], {
          default: null,
          description: "The system user's avatar (an mxc:// URI).",
        }),
        room_name: Type.String({
          maxLength: 256,
          default: 'Server Notices',
          description: "Name of each user's server-notices room.",
        }),
        room_topic: Type.Union([Type.String({ maxLength: 1024 }), Type.Null()], {
          default: null,
          description: "Topic of each user's server-notices room.",
        }),
        room_avatar_url: Type.Union([Type.String({ maxLength: 1024 }), Type.Null()], {
          default: null,
          description: "Avatar of each user's server-notices room (an mxc:// URI).",
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Server notices sent by admins (`send_server_notice`, docs/admin.md).',
      },
    ),
    password_policy: Type.Object(
      {
        minimum_length: Type.Integer({
          minimum: 0,
          maximum: 512,
          default: 0,
          description: 'Shortest new password, in characters (0: any length).',
        }),
        require_digit: Type.Boolean({ default: false, description: 'New passwords need a digit.' }),
        require_lowercase: Type.Boolean({
          default: false,
          description: 'New passwords need a lowercase letter.',
        }),
        require_uppercase: Type.Boolean({
          default: false,
          description: 'New passwords need an uppercase letter.',
        }),
        require_symbol: Type.Boolean({
          default: false,
          description: 'New passwords need a character that is neither a letter nor a digit.',
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description:
          'What new passwords must be like (registration, password changes, the admin API); a refusal is 400 M_WEAK_PASSWORD.',
      },
    ),
    password_hashing: Type.Object(
      {
        scrypt_log2_n: Type.Integer({
          minimum: 10,
          maximum: 20,
          default: 15,
          description: 'scrypt cost as log2(N) for new password hashes (15 = 32 MiB per hash).',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Password storage.' },
    ),
    log: Type.Object(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) =>
            Type.Literal(l),
          ),
          { default: 'info', description: 'fatal, error, warn, info, debug, trace or silent.' },
        ),
        format: Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('pretty')], {
          default: 'auto',
          description:
            'json: one JSON object a line (for files, journald, log collectors); pretty: one readable, coloured line per entry; auto: pretty when standard output is a terminal, json otherwise.',
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Logging (pino, one line per request).',
      },
    ),
    metrics: Type.Object(
      {
        enabled: Type.Boolean({
          default: false,
          description:
            'Serve Prometheus metrics at `/metrics` on a listener of their own (`metrics.listen`), never on the client listener. See docs/monitoring.md.',
        }),
        listen: Type.Object(
          {
            host: Type.String({
              minLength: 1,
              default: '127.0.0.1',
              description: 'Address of the metrics listener.',
            }),
            port: Type.Integer({
              minimum: 0,
              maximum: 65535,
              default: 9000,
              description: 'TCP port of the metrics listener (0 picks a free one).',
            }),
          },
          { additionalProperties: false, default: {}, description: 'Where `/metrics` listens.' },
        ),
      },
      { additionalProperties: false, default: {}, description: 'Prometheus metrics.' },
    ),
    federation: Type.Object(
      {
        enabled: Type.Boolean({
          default: false,
          description:
            'Take part in federation: serve `/_matrix/key/v2/*` and `/_matrix/federation/*` (on the client listener, for a reverse proxy, and on `federation.listen` when a TLS certificate is set) and send queued events to other servers. See docs/federation.md.',
        }),
        listen: Type.Object(
          {
            host: Type.String({
              minLength: 1,
              default: '0.0.0.0',
              description: 'Address of the federation listener.',
            }),
            port: Type.Integer({
              minimum: 0,
              maximum: 65535,
              default: 8448,
              description: 'TCP port of the federation listener (0 picks a free one).',
            }),
          },
          {
            additionalProperties: false,
            default: {},
            description:
              'Where the TLS federation listener listens (only when `federation.tls_certificate` and `federation.tls_private_key` are set).',
          },
        ),
        tls_certificate: Type.Union([Type.String({ minLength: 1 }), Type.Null()], {
          default: null,
          description:
            "PEM file of the federation listener's certificate (with its chain). Null, with `tls_private_key` null: no listener of its own; federation is served on the client listener behind a reverse proxy that terminates TLS.",
        }),
        tls_private_key: Type.Union([Type.String({ minLength: 1 }), Type.Null()], {
          default: null,
          description: "PEM file of the federation listener's private key.",
        }),
        trusted_ca_file: Type.Union([Type.String({ minLength: 1 }), Type.Null()], {
          default: null,
          description:
            "A PEM file of certificate authorities trusted for outbound federation requests besides the system's (private deployments, tests). Certificates are always checked.",
        }),
        trusted_key_servers: Type.Array(Type.String({ minLength: 1 }), {
          default: [],
          description:
            'Notary servers asked (`/_matrix/key/v2/query`) for the keys of a server that does not answer for its own. Empty: keys are only fetched from the servers themselves.',
        }),
        key_validity_hours: Type.Integer({
          minimum: 1,
          maximum: 168,
          default: 24,
          description:
            'How long other servers may cache our signing key (`valid_until_ts` of `/_matrix/key/v2/server` is now plus this).',
        }),
        request_timeout_seconds: Type.Number({
          exclusiveMinimum: 0,
          default: 60,
          description: 'How long an outbound federation request may take before it is given up.',
        }),
        retry_max_seconds: Type.Integer({
          minimum: 1,
          default: 3600,
          description:
            'Longest wait between attempts to send to a destination that keeps failing (the wait doubles from 5 s up to this). A destination that contacts us is tried again at once.',
        }),
        presence_refresh_seconds: Type.Integer({
          minimum: 1,
          default: 1500,
          description:
            'How often the presence of local users who stay online or unavailable is sent again (`m.presence`) to the servers sharing a room with them, so that those servers (Synapse: after 30 minutes without news) do not time them out to offline. Offline users are not sent again.',
        }),
        inbound_rate_limit: Type.Object(
          {
            per_second: Type.Number({
              minimum: 0,
              default: 100,
              description:
                'Authenticated federation requests each origin server may make per second, on average (0: no limit).',
            }),
            burst: Type.Integer({
              minimum: 1,
              default: 500,
              description: 'Requests an origin may make at once before the rate applies.',
            }),
          },
          {
            additionalProperties: false,
            default: {},
            description:
              'A token bucket per origin server for authenticated `/_matrix/federation/*` requests; beyond it, `429 M_LIMIT_EXCEEDED` with `retry_after_ms`.',
          },
        ),
      },
      { additionalProperties: false, default: {}, description: 'Federation with other servers.' },
    ),
    app_services: Type.Object(
      {
        config_files: Type.Array(Type.String({ minLength: 1 }), {
          default: [],
          description:
            'Application-service registration files (YAML, as bridges generate them), each validated at start. In the environment: paths separated by commas. See docs/appservices.md.',
        }),
        retry_max_seconds: Type.Number({
          exclusiveMinimum: 0,
          default: 300,
          description:
            'The longest wait between attempts to deliver a transaction to a bridge that does not answer (the wait doubles from 1 s up to this).',
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Application services (bridges and bots).',
      },
    ),
    push: Type.Object(
      {
        retry_max_seconds: Type.Number({
          exclusiveMinimum: 0,
          default: 600,
          description:
            'The longest wait between attempts to deliver a notification to a push gateway that does not answer (the wait doubles from 1 s up to this). Notifications wait in the queue meanwhile.',
        }),
        inline_evaluation_max_members: Type.Integer({
          minimum: 0,
          default: 100,
          description:
            "Rooms of up to this many joined members have each event checked against their members' push rules in the event's own transaction, so unread counts are right the moment it is sent; events into bigger rooms are evaluated just after, in pages, without holding the server (counts and pushes follow within moments). 0: always after.",
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Delivery of push notifications to push gateways (`/pushers`).',
      },
    ),
    shutdown: Type.Object(
      {
        grace_seconds: Type.Number({
          minimum: 0,
          default: 10,
          description:
            'On SIGTERM or SIGINT, how long in-flight requests get to finish; then the remaining connections are cut and the process exits. A second signal exits at once.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Stopping.' },
    ),
    memory: Type.Object(
      {
        heap_growth_percent: Type.Union(
          [Type.Integer({ minimum: 10, maximum: 300 }), Type.Null()],
          {
            default: 50,
            description:
              "How far the JavaScript heap may grow past what was live at the last full garbage collection before the next one runs (V8's `--heap-growing-percent`; set when the `commons` command starts the server). V8's own choice is up to 300% under a high allocation rate: a server with 40 MiB live kept 150-210 MiB of heap. Lower: less memory, more time collecting. null: V8's own choice (as does a `--heap-growing-percent` given to node).",
          },
        ),
      },
      { additionalProperties: false, default: {}, description: 'Memory.' },
    ),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;
