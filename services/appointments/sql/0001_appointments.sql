-- appointments: the state of every booking request (the source of truth) and its outbox.
-- Applied by taina-appointments at start, once, under an advisory lock (tn_db_migrate).

CREATE TABLE appointments (
    request_id      uuid PRIMARY KEY,            -- the idempotency key
    tenant_id       text NOT NULL,
    session_id      uuid,
    citizen_name    text NOT NULL,
    id_number       text NOT NULL,               -- never the plain value: "hmac-sha256:HEX" or
                                                 -- "aes-256-gcm:BASE64" (services/appointments/idnum.c)
    phone           text,
    service_code    text NOT NULL,
    window_from     timestamptz NOT NULL,
    window_to       timestamptz NOT NULL,
    lang            text NOT NULL,
    requested_at    timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'requested'
                    CHECK (status IN ('requested', 'booking', 'booked', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    external_id     text,                        -- the booking system's Appointment id
    slot_id         text,
    slot_start      timestamptz,
    slot_end        timestamptz,
    reason          text,                        -- why it failed, or the last transient error
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,                 -- a worker is booking it until then
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- what the booking workers look for
CREATE INDEX appointments_pending ON appointments (next_attempt_at)
    WHERE status IN ('requested', 'booking');

-- one row per state change, written by the trigger below in the same transaction as the change;
-- the publisher sends unsent rows to appointments.results and marks them sent
CREATE TABLE appointments_outbox (
    id          bigserial PRIMARY KEY,
    request_id  uuid NOT NULL,
    payload     text NOT NULL,                   -- the appointments.results value
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);

CREATE INDEX appointments_outbox_unsent ON appointments_outbox (id) WHERE sent_at IS NULL;

CREATE FUNCTION appointments_ts(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- an appointments.results value (schemas/appointments.results.schema.json)
CREATE FUNCTION appointments_result(a appointments) RETURNS text
    LANGUAGE sql IMMUTABLE AS
$$ SELECT jsonb_strip_nulls(jsonb_build_object(
       'schema_version', 1,
       'request_id', a.request_id,
       'tenant_id', a.tenant_id,
       'session_id', a.session_id,
       'status', a.status,
       'external_id', left(a.external_id, 128),
       'slot', CASE WHEN a.slot_start IS NULL THEN NULL ELSE jsonb_build_object(
                   'start', appointments_ts(a.slot_start), 'end', appointments_ts(a.slot_end)) END,
       'reason', CASE WHEN a.status = 'failed' OR a.status = 'cancelled'
                      THEN left(a.reason, 1000) END,
       'attempts', a.attempts,
       'at', appointments_ts(a.updated_at)))::text $$;

-- the GET /v1/appointments/{request_id} body (schemas/http/appointments.response.schema.json)
CREATE FUNCTION appointments_view(a appointments) RETURNS text
    LANGUAGE sql IMMUTABLE AS
$$ SELECT jsonb_strip_nulls(jsonb_build_object(
       'request_id', a.request_id,
       'status', a.status,
       'external_id', left(a.external_id, 128),
       'slot', CASE WHEN a.slot_start IS NULL THEN NULL ELSE jsonb_build_object(
                   'start', appointments_ts(a.slot_start), 'end', appointments_ts(a.slot_end)) END,
       'reason', left(a.reason, 1000),
       'attempts', a.attempts,
       'created_at', appointments_ts(a.created_at),
       'updated_at', appointments_ts(a.updated_at)))::text $$;

-- every insert and every status change leaves its result in the outbox, in its own transaction:
-- no code path can change a state without its result being published
CREATE FUNCTION appointments_outbox_write() RETURNS trigger
    LANGUAGE plpgsql AS
$$ BEGIN
       IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
           INSERT INTO appointments_outbox (request_id, payload)
           VALUES (NEW.request_id, appointments_result(NEW));
       END IF;
       RETURN NEW;
   END $$;

CREATE TRIGGER appointments_outbox_write AFTER INSERT OR UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION appointments_outbox_write();
