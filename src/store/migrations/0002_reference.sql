-- Caisse reference data (spec §5) and provider accounts.
-- Money and hours are INTEGER hundredths; dates are YYYY-MM-DD text;
-- timestamps are RFC 3339 UTC text.

CREATE TABLE providers (
    provider       TEXT PRIMARY KEY,       -- account name: ASCII letters and digits
    raison_sociale TEXT NOT NULL,
    siret          TEXT NOT NULL,          -- 14 digits, Luhn (La Poste: digit sum % 5)
    email          TEXT NOT NULL,
    telephone      TEXT NOT NULL,          -- nn nn nn nn nn
    type           TEXT NOT NULL CHECK (type IN ('saad','ergo')),
    updated_at     TEXT NOT NULL
);

-- One row per convention of a provider with a caisse; the caisse's import validates it.
CREATE TABLE conventions (
    provider        TEXT NOT NULL REFERENCES providers(provider),
    id_cram         TEXT NOT NULL,
    code_convention TEXT NOT NULL,
    id_site         TEXT NOT NULL,         -- a site belongs to exactly one provider
    validated       INTEGER NOT NULL DEFAULT 1,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (provider, id_cram, code_convention)
);
CREATE INDEX conventions_site ON conventions(id_site);

-- Beneficiary plans.
CREATE TABLE plans (
    id          INTEGER PRIMARY KEY,
    id_cram     TEXT NOT NULL,
    id_site     TEXT NOT NULL,
    nir_per     TEXT NOT NULL,
    nom_per     TEXT NOT NULL,
    pn_per      TEXT NOT NULL,
    rf_prstpap  TEXT NOT NULL,
    dt_debut    TEXT NOT NULL,             -- YYYY-MM-DD
    dt_fin      TEXT NOT NULL,             -- YYYY-MM-DD
    mt_total    INTEGER NOT NULL,          -- hundredths
    mt_consomme INTEGER NOT NULL,          -- hundredths
    updated_at  TEXT NOT NULL,
    UNIQUE (id_cram, id_site, nir_per, rf_prstpap, dt_debut)
);
CREATE INDEX plans_lookup ON plans(nir_per, rf_prstpap, id_cram);

-- Provider accounts (SFTP logins).
CREATE TABLE users (
    login         TEXT PRIMARY KEY,        -- ASCII letters and digits, 1-32
    provider      TEXT NOT NULL REFERENCES providers(provider),
    email         TEXT NOT NULL,
    admin         INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT,                    -- PHC string, Argon2id; NULL: key-only account
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX users_provider ON users(provider);

CREATE TABLE user_keys (
    id          INTEGER PRIMARY KEY,
    login       TEXT NOT NULL REFERENCES users(login),
    algorithm   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,             -- SHA256:... as ssh-keygen -l prints it
    openssh     TEXT NOT NULL,             -- "<algorithm> <base64>", without comment
    comment     TEXT NOT NULL DEFAULT '',
    added_at    TEXT NOT NULL,
    UNIQUE (login, fingerprint)
);
-- A key opens one account only: looked up by fingerprint across logins.
CREATE INDEX user_keys_fingerprint ON user_keys(fingerprint);
