/*
 * demo.c — the synthetic vessel-analytics data set (see demo.h).
 *
 * Determinism: every value comes from one splitmix64 stream with a fixed
 * seed, consumed in a fixed order; times are computed from integers and
 * formatted without the C library's time zone or locale; coordinates are
 * rounded to 5 decimals (about 1 m) and speeds to 1 decimal before they are
 * stored, so the database bytes do not depend on the machine.
 *
 * Event order: round-robin over the vessels, round r of vessel v at
 *   start + r * interval + offset[v]      (0 <= offset[v] < interval)
 * so event_id follows time closely, as in a live feed, and each vessel's
 * own events are in time order.
 */
#include "sqlenvfs/demo.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SEED G_GUINT64_CONSTANT(0x5eedc0ffee2026)
#define START_UNIX G_GINT64_CONSTANT(1767225600) /* 2026-01-01T00:00:00Z */
#define SPAN_SECONDS (30 * 86400)
#define BATCH 50000

typedef struct {
  guint64 state;
} Rng;

static guint64
next_u64(Rng *r)
{
  guint64 z = (r->state += G_GUINT64_CONSTANT(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static guint32
below(Rng *r, guint32 n)
{
  return (guint32)(next_u64(r) % n);
}

/* Uniform in [lo, hi). */
static double
uniform(Rng *r, double lo, double hi)
{
  return lo + (hi - lo) * ((double)(next_u64(r) >> 11) / 9007199254740992.0);
}

static double
round_to(double v, double scale)
{
  return round(v * scale) / scale;
}

typedef struct {
  const char *code;
  int mid; /* Maritime Identification Digits of the flag */
} Flag;

static const Flag flags[] = {
  { "PA", 351 }, { "LR", 636 }, { "MH", 538 }, { "SG", 563 }, { "MT", 215 },
  { "BS", 311 }, { "GR", 237 }, { "CN", 412 }, { "NO", 257 }, { "GB", 232 },
  { "DE", 211 }, { "NL", 244 }, { "DK", 219 }, { "US", 366 }, { "JP", 431 },
  { "CY", 209 }, { "IT", 247 }, { "FR", 227 }, { "ES", 224 }, { "KR", 440 },
};

typedef struct {
  const char *name;
  int weight;             /* relative frequency                   */
  double len_lo, len_hi;  /* length overall, m                    */
  double speed_lo, speed_hi; /* service speed, knots              */
  gboolean has_imo;
} VesselType;

static const VesselType types[] = {
  { "Container Ship", 18, 140, 400, 14, 22, TRUE },
  { "Bulk Carrier", 20, 150, 300, 11, 15, TRUE },
  { "Tanker", 16, 100, 330, 11, 16, TRUE },
  { "General Cargo", 14, 80, 180, 10, 14, TRUE },
  { "Passenger", 5, 60, 330, 15, 23, TRUE },
  { "Offshore Supply", 4, 50, 100, 10, 14, TRUE },
  { "Fishing", 10, 15, 75, 7, 11, FALSE },
  { "Tug", 6, 20, 45, 8, 12, FALSE },
  { "Research", 2, 40, 110, 10, 14, TRUE },
  { "Pleasure Craft", 5, 8, 40, 8, 20, FALSE },
};

static const char *const name_first[] = {
  "ATLANTIC", "PACIFIC", "NORDIC", "OCEAN", "GOLDEN", "SILVER", "BLUE", "NORTHERN",
  "SOUTHERN", "EASTERN", "WESTERN", "GRAND", "ROYAL", "STAR", "CAPE", "POLAR",
  "CORAL", "EVER", "MARE", "AURORA", "HORIZON", "PEARL", "IRON", "JADE",
};

static const char *const name_second[] = {
  "PIONEER", "SPIRIT", "TRADER", "VOYAGER", "HARMONY", "GLORY", "FORTUNE", "BREEZE",
  "EXPRESS", "NAVIGATOR", "DAWN", "WAVE", "CROWN", "PRIDE", "EAGLE", "FALCON",
  "MERIDIAN", "ENDEAVOUR", "PROSPER", "UNITY", "LEGEND", "TRIDENT", "ORION", "VEGA",
};

typedef struct {
  const char *locode;
  double lat, lon;
} Port;

static const Port ports[] = {
  { "NLRTM", 51.95, 4.05 },    { "SGSIN", 1.26, 103.84 },   { "CNSHA", 31.36, 121.62 },
  { "USLAX", 33.73, -118.26 }, { "DEHAM", 53.54, 9.97 },    { "BEANR", 51.28, 4.32 },
  { "KRPUS", 35.08, 129.05 },  { "JPTYO", 35.62, 139.78 },  { "AEJEA", 25.01, 55.06 },
  { "GBFXT", 51.95, 1.33 },    { "ESALG", 36.13, -5.43 },   { "USNYC", 40.67, -74.04 },
  { "HKHKG", 22.29, 114.16 },  { "MYPKG", 3.00, 101.39 },   { "CNNGB", 29.94, 121.85 },
  { "GRPIR", 37.94, 23.62 },   { "ITGOA", 44.40, 8.92 },    { "FRLEH", 49.48, 0.11 },
  { "NOOSL", 59.90, 10.74 },   { "BRSSZ", -23.97, -46.30 }, { "ZADUR", -29.87, 31.03 },
  { "AUMEL", -37.84, 144.91 }, { "PAONX", 9.36, -79.90 },   { "EGPSD", 31.26, 32.30 },
};

static const char *const roman[] = { "", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX" };

enum { ST_UNDERWAY, ST_MOORED, ST_ANCHORED };

typedef struct {
  guint32 mmsi;
  double lat, lon;
  double speed;   /* service speed, knots */
  guint dest;     /* port index */
  int state;
  int wait;       /* rounds left moored/anchored */
  guint32 offset; /* seconds into each round */
} Vessel;

guint
sqlenvfs_demo_n_vessels(guint64 n_events)
{
  guint64 n = n_events / 240;
  return (guint)CLAMP(n, 10, 5000);
}

static guint32
imo_with_check_digit(guint32 six)
{
  guint32 sum = 0, d = six;
  for (int w = 2; w <= 7; w++) {
    sum += (d % 10) * (guint32)w;
    d /= 10;
  }
  return six * 10 + sum % 10;
}

static const VesselType *
pick_type(Rng *r)
{
  int total = 0, x;
  for (gsize i = 0; i < G_N_ELEMENTS(types); i++)
    total += types[i].weight;
  x = (int)below(r, (guint32)total);
  for (gsize i = 0; i < G_N_ELEMENTS(types); i++) {
    if (x < types[i].weight)
      return &types[i];
    x -= types[i].weight;
  }
  return &types[0];
}

/* "2026-01-01T00:00:00Z" from Unix seconds (proleptic Gregorian, UTC). */
static void
format_time(gint64 t, char out[32])
{
  gint64 days = t / 86400, secs = t % 86400;
  /* Howard Hinnant's days-to-civil algorithm. */
  gint64 z = days + 719468;
  gint64 era = (z >= 0 ? z : z - 146096) / 146097;
  gint64 doe = z - era * 146097;
  gint64 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  gint64 y = yoe + era * 400;
  gint64 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  gint64 mp = (5 * doy + 2) / 153;
  gint64 d = doy - (153 * mp + 2) / 5 + 1;
  gint64 m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2)
    y++;
  snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02dZ", (int)y, (int)m, (int)d,
           (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
}

static gboolean
step_ok(sqlite3 *db, sqlite3_stmt *st, const char *path, GError **error)
{
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return sqlenvfs_error_sqlite(error, db, rc, "load demo data into", path);
  return TRUE;
}

static gboolean
insert_vessels(sqlite3 *db, Rng *r, Vessel *vessels, guint n, guint32 interval,
               const char *path, GError **error)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  int rc = sqlite3_prepare_v2(
    db,
    "INSERT INTO vessel_characteristics (mmsi, imo, vessel_name, call_sign, flag_state, "
    "vessel_type, length_m, beam_m, max_draught_m, gross_tonnage, deadweight_t, year_built, "
    "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'2026-01-01T00:00:00Z')",
    -1, &st, NULL);
  if (rc != SQLITE_OK)
    return sqlenvfs_error_sqlite(error, db, rc,
                                 "load demo data (does the schema have the table "
                                 "vessel_characteristics of schema.sql?) into",
                                 path);

  for (guint i = 0; i < n; i++) {
    const Flag *flag = &flags[below(r, G_N_ELEMENTS(flags))];
    const VesselType *type = pick_type(r);
    Vessel *v = &vessels[i];
    double len = round_to(uniform(r, type->len_lo, type->len_hi), 10);
    double beam = round_to(len / uniform(r, 5.5, 7.5), 10);
    double draught = round_to(len / uniform(r, 16, 24), 10);
    gint64 gt = (gint64)(len * beam * draught * 0.32);
    char name[64], call_sign[8];
    guint suffix = below(r, 10);
    int cs_len = 4 + (int)below(r, 3);

    g_snprintf(name, sizeof name, "%s %s%s%s", name_first[below(r, G_N_ELEMENTS(name_first))],
               name_second[below(r, G_N_ELEMENTS(name_second))], suffix ? " " : "",
               roman[suffix]);
    for (int k = 0; k < cs_len; k++)
      call_sign[k] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[below(r, k < 2 ? 26 : 36)];
    call_sign[cs_len] = '\0';

    v->mmsi = (guint32)flag->mid * 1000000u + 100000u + i;
    v->speed = uniform(r, type->speed_lo, type->speed_hi);
    v->dest = below(r, G_N_ELEMENTS(ports));
    {
      const Port *start = &ports[below(r, G_N_ELEMENTS(ports))];
      v->lat = start->lat + uniform(r, -3, 3);
      v->lon = start->lon + uniform(r, -3, 3);
    }
    v->state = ST_UNDERWAY;
    v->wait = 0;
    v->offset = below(r, interval);

    sqlite3_bind_int64(st, 1, v->mmsi);
    if (type->has_imo)
      sqlite3_bind_int64(st, 2, imo_with_check_digit(910000u + i));
    else
      sqlite3_bind_null(st, 2);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, call_sign, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, flag->code, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, type->name, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 7, len);
    sqlite3_bind_double(st, 8, beam);
    sqlite3_bind_double(st, 9, draught);
    sqlite3_bind_int64(st, 10, gt);
    if (type->has_imo)
      sqlite3_bind_int64(st, 11, (gint64)(gt * uniform(r, 1.2, 1.8)));
    else
      sqlite3_bind_null(st, 11);
    sqlite3_bind_int(st, 12, 1975 + (int)below(r, 51));
    if (!step_ok(db, st, path, error))
      return FALSE;
  }
  return TRUE;
}

/* Bearing in degrees [0, 360) from (lat, lon) towards port @p, and the
 * distance in nautical miles (equirectangular: fine at these scales). */
static void
towards(const Vessel *v, const Port *p, double *bearing, double *dist_nm)
{
  double dlon = p->lon - v->lon, dlat = p->lat - v->lat;
  double x, y;
  if (dlon > 180)
    dlon -= 360;
  if (dlon < -180)
    dlon += 360;
  x = dlon * cos(v->lat * G_PI / 180);
  y = dlat;
  *dist_nm = sqrt(x * x + y * y) * 60;
  *bearing = fmod(atan2(x, y) * 180 / G_PI + 360, 360);
}

typedef struct {
  const char *type;
  double lat, lon, speed, course;
  int heading, nav_status;
  const char *locode;
} Event;

/* Advance vessel @v by one round of @interval seconds and describe the event
 * it reports. */
static void
advance(Rng *r, Vessel *v, guint32 interval, Event *ev)
{
  const Port *dest = &ports[v->dest];
  double bearing, dist;

  memset(ev, 0, sizeof *ev);
  if (v->state != ST_UNDERWAY) {
    if (--v->wait > 0) {
      ev->type = v->state == ST_MOORED ? "moored" : "anchored";
      ev->nav_status = v->state == ST_MOORED ? 5 : 1;
      ev->locode = v->state == ST_MOORED ? dest->locode : NULL;
      ev->speed = 0;
      ev->course = 0;
    } else {
      /* Leave for another port: a departure from a berth, or weighing
       * anchor outside the port. */
      const char *from = dest->locode;
      guint next = below(r, G_N_ELEMENTS(ports) - 1);
      gboolean was_moored = v->state == ST_MOORED;
      v->dest = next >= v->dest ? next + 1 : next;
      v->state = ST_UNDERWAY;
      towards(v, &ports[v->dest], &bearing, &dist);
      ev->type = was_moored ? "port_departure" : "underway";
      ev->nav_status = 0;
      ev->locode = was_moored ? from : NULL;
      ev->speed = round_to(v->speed * 0.4, 10);
      ev->course = bearing;
    }
  } else {
    double step;
    towards(v, dest, &bearing, &dist);
    step = v->speed * interval / 3600.0;
    if (dist <= step) {
      v->lat = dest->lat;
      v->lon = dest->lon;
      v->state = below(r, 5) == 0 ? ST_ANCHORED : ST_MOORED;
      v->wait = 2 + (int)below(r, 8);
      ev->type = v->state == ST_MOORED ? "port_arrival" : "anchored";
      ev->nav_status = v->state == ST_MOORED ? 5 : 1;
      ev->locode = v->state == ST_MOORED ? dest->locode : NULL;
      ev->speed = 0;
      ev->course = bearing;
    } else {
      double course = fmod(bearing + uniform(r, -4, 4) + 360, 360);
      double moved = step * uniform(r, 0.85, 1.05);
      v->lat += moved / 60 * cos(course * G_PI / 180);
      v->lat = CLAMP(v->lat, -80, 80);
      v->lon += moved / 60 * sin(course * G_PI / 180) / cos(v->lat * G_PI / 180);
      if (v->lon > 180)
        v->lon -= 360;
      if (v->lon < -180)
        v->lon += 360;
      ev->type = "position";
      ev->nav_status = 0;
      ev->speed = round_to(v->speed * uniform(r, 0.9, 1.05), 10);
      ev->course = course;
    }
  }
  ev->lat = round_to(v->lat, 1e5);
  ev->lon = round_to(v->lon, 1e5);
  ev->course = round_to(ev->course, 10);
  if (ev->course >= 360)
    ev->course = 0;
  ev->heading = ((int)lround(ev->course) + (int)below(r, 7) - 3 + 360) % 360;
}

gboolean
sqlenvfs_demo_load(sqlite3 *db, guint64 n_events, SqlenvfsProgressFunc progress, gpointer user,
                   const char *path, GError **error)
{
  Rng rng = { SEED };
  guint n_vessels = sqlenvfs_demo_n_vessels(n_events);
  guint64 rounds = (n_events + n_vessels - 1) / n_vessels;
  guint32 interval = (guint32)MAX(60, SPAN_SECONDS / MAX(rounds, 1));
  g_autofree Vessel *vessels = g_new0(Vessel, n_vessels);
  g_autoptr(sqlite3_stmt) st = NULL;
  gboolean in_txn = FALSE;
  int rc;

  g_return_val_if_fail(n_events > 0, FALSE);

  if (!sqlenvfs_db_exec(db, "BEGIN", path, error))
    return FALSE;
  in_txn = TRUE;
  if (!insert_vessels(db, &rng, vessels, n_vessels, interval, path, error))
    goto fail;

  rc = sqlite3_prepare_v2(db,
                          "INSERT INTO raw_vessel_events (event_id, mmsi, event_time, event_type, "
                          "latitude, longitude, speed_knots, course_deg, heading_deg, nav_status, "
                          "port_locode, source) VALUES (?,?,?,?,?,?,?,?,?,?,?,'ais')",
                          -1, &st, NULL);
  if (rc != SQLITE_OK) {
    sqlenvfs_error_sqlite(error, db, rc,
                          "load demo data (does the schema have the table raw_vessel_events "
                          "of schema.sql?) into",
                          path);
    goto fail;
  }

  for (guint64 i = 0; i < n_events; i++) {
    guint v_idx = (guint)(i % n_vessels);
    guint64 round_no = i / n_vessels;
    Vessel *v = &vessels[v_idx];
    char when[32];
    Event ev;

    advance(&rng, v, interval, &ev);
    format_time(START_UNIX + (gint64)(round_no * interval) + v->offset, when);
    sqlite3_bind_int64(st, 1, (gint64)i + 1);
    sqlite3_bind_int64(st, 2, v->mmsi);
    sqlite3_bind_text(st, 3, when, 20, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, ev.type, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, ev.lat);
    sqlite3_bind_double(st, 6, ev.lon);
    sqlite3_bind_double(st, 7, ev.speed);
    sqlite3_bind_double(st, 8, ev.course);
    sqlite3_bind_int(st, 9, ev.heading);
    sqlite3_bind_int(st, 10, ev.nav_status);
    if (ev.locode)
      sqlite3_bind_text(st, 11, ev.locode, 5, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 11);
    if (!step_ok(db, st, path, error))
      goto fail;

    if ((i + 1) % BATCH == 0 || i + 1 == n_events) {
      if (!sqlenvfs_db_exec(db, "COMMIT", path, error))
        goto fail;
      in_txn = FALSE;
      if (progress)
        progress(user, i + 1, n_events);
      if (i + 1 < n_events) {
        if (!sqlenvfs_db_exec(db, "BEGIN", path, error))
          return FALSE;
        in_txn = TRUE;
      }
    }
  }
  if (in_txn && !sqlenvfs_db_exec(db, "COMMIT", path, error))
    goto fail;
  g_debug("demo data: %u vessels, %" G_GUINT64_FORMAT " events into %s", n_vessels, n_events,
          path);
  return TRUE;

fail:
  if (in_txn)
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}
