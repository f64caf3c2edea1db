-- Vessel analytics: ship particulars and the raw AIS event stream.
--
-- `sqlenvfs init` runs this file in a new production database (then marks
-- it and switches it to WAL mode). Times are stored as UTC ISO 8601 text
-- ('2026-01-01T00:00:00Z'), which sorts in time order and reads well in the
-- sqlite3 shell. `init --demo` fills both tables with a synthetic data set.

PRAGMA foreign_keys = ON;

-- One row per vessel, keyed by its MMSI (the 9-digit radio identity every
-- AIS message carries).
CREATE TABLE IF NOT EXISTS vessel_characteristics (
    mmsi          INTEGER PRIMARY KEY
                  CHECK (mmsi BETWEEN 100000000 AND 999999999),
    imo           INTEGER UNIQUE
                  CHECK (imo IS NULL OR imo BETWEEN 1000000 AND 9999999),
    vessel_name   TEXT    NOT NULL,
    call_sign     TEXT,
    flag_state    TEXT    CHECK (flag_state IS NULL OR length(flag_state) = 2),
    vessel_type   TEXT    NOT NULL,
    length_m      REAL    CHECK (length_m IS NULL OR length_m > 0),
    beam_m        REAL    CHECK (beam_m IS NULL OR beam_m > 0),
    max_draught_m REAL    CHECK (max_draught_m IS NULL OR max_draught_m > 0),
    gross_tonnage INTEGER CHECK (gross_tonnage IS NULL OR gross_tonnage >= 0),
    deadweight_t  INTEGER CHECK (deadweight_t IS NULL OR deadweight_t >= 0),
    year_built    INTEGER CHECK (year_built IS NULL OR year_built BETWEEN 1850 AND 2100),
    updated_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE INDEX IF NOT EXISTS idx_vessel_type ON vessel_characteristics (vessel_type);
CREATE INDEX IF NOT EXISTS idx_vessel_flag ON vessel_characteristics (flag_state);

-- The raw event stream: position reports and port calls, as received.
-- event_id follows arrival order; queries go by vessel and time, or by time.
CREATE TABLE IF NOT EXISTS raw_vessel_events (
    event_id     INTEGER PRIMARY KEY,
    mmsi         INTEGER NOT NULL REFERENCES vessel_characteristics (mmsi),
    event_time   TEXT    NOT NULL,
    event_type   TEXT    NOT NULL
                 CHECK (event_type IN ('position', 'port_arrival', 'port_departure',
                                       'anchored', 'moored', 'underway')),
    latitude     REAL    CHECK (latitude IS NULL OR latitude BETWEEN -90 AND 90),
    longitude    REAL    CHECK (longitude IS NULL OR longitude BETWEEN -180 AND 180),
    speed_knots  REAL    CHECK (speed_knots IS NULL OR speed_knots >= 0),
    course_deg   REAL    CHECK (course_deg IS NULL OR (course_deg >= 0 AND course_deg < 360)),
    heading_deg  INTEGER CHECK (heading_deg IS NULL OR heading_deg BETWEEN 0 AND 359),
    nav_status   INTEGER CHECK (nav_status IS NULL OR nav_status BETWEEN 0 AND 15),
    port_locode  TEXT    CHECK (port_locode IS NULL OR length(port_locode) = 5),
    source       TEXT    NOT NULL DEFAULT 'ais'
);

CREATE INDEX IF NOT EXISTS idx_events_vessel_time ON raw_vessel_events (mmsi, event_time);
CREATE INDEX IF NOT EXISTS idx_events_time ON raw_vessel_events (event_time);
