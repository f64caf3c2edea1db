/*
 * timefmt.h — every time a user types or the project stores.
 *
 * Internally a time is gint64 microseconds since the Unix epoch, UTC.
 *
 * Accepted input forms (in a pitr/ path and on the command line), and
 * nothing else:
 *   20261128T161400Z            ISO 8601 basic, UTC
 *   20261128T161400.250Z        ... with a fraction (1-9 digits; beyond
 *                               microseconds ignored, as `date +%N` prints)
 *   2026-11-28T16:14:00Z        ISO 8601 extended, UTC
 *   2026-11-28T16:14:00.25+01:00  ... with fraction and/or numeric offset
 *   @1795882440  @1795882440.25   Unix seconds (fraction 1-9 digits)
 *   latest                        the newest recoverable time
 *   earliest                      the oldest recoverable time
 *
 * Names of backups and snapshots are the basic form, with a millisecond
 * fraction only when needed to keep names unique. Sort names with
 * sqlenvfs_time_name_cmp(), not strcmp().
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The last time there is: 9999-12-31T23:59:59.999999Z. Every parsed time
 * lies in [0, SQLENVFS_TIME_MAX_US], so that every formatter can show it. */
#define SQLENVFS_TIME_MAX_US (G_GINT64_CONSTANT(253402300800) * G_USEC_PER_SEC - 1)

typedef struct {
  gboolean is_latest;   /* "latest": resolve against the recoverable window   */
  gint64 us;            /* microseconds since the epoch, UTC (0 for either)   */
  gboolean is_earliest; /* "earliest": the start of the first recoverable one */
} SqlenvfsTime;

/* The accepted forms, as one line for error messages. */
#define SQLENVFS_TIME_FORMS \
  "20261128T161400Z, 20261128T161400.250Z, 2026-11-28T16:14:00Z, " \
  "2026-11-28T16:14:00.25+01:00, 2026-11-28 16:14:00 +01:00 (as list prints it), " \
  "@1795882440, @1795882440.25, latest or " \
  "earliest (fractions of up to nine digits)"

/* Parse @text. On failure FALSE with SQLENVFS_ERROR_INVALID naming the text
 * and listing the accepted forms (or the range, for a time that an offset
 * moves before 1970 or after 9999 in UTC); *out is untouched. */
gboolean sqlenvfs_time_parse(const char *text, SqlenvfsTime *out, GError **error);

/* The formatters take any gint64: a time outside [0, SQLENVFS_TIME_MAX_US],
 * which only damaged data holds, comes out as "invalid time (N us from
 * 1970-01-01T00:00:00Z)", which no parser accepts. */

/* "20261128T161400Z", or "20261128T161400.250Z" when @with_ms. */
char *sqlenvfs_time_format_name(gint64 us, gboolean with_ms);

/* "2026-11-28T16:14:00Z", with ".ffffff" (trailing zeros trimmed) when the
 * time has a fraction. Round-trips through sqlenvfs_time_parse(). */
char *sqlenvfs_time_format_iso(gint64 us);

/* Local time with its offset for people: "2026-11-28 17:14:00 +01:00". */
char *sqlenvfs_time_format_local(gint64 us);

/* Parse a backup/snapshot name (basic form, optional fraction). FALSE if it
 * is not one (no error: callers skip foreign names). */
gboolean sqlenvfs_time_parse_name(const char *name, gint64 *us);

/* Order two backup/snapshot names by the time they name (a plain name and
 * one with a fraction in the same second do not sort by bytes: '.' < 'Z').
 * Names that are not times sort first, by bytes. For g_ptr_array_sort():
 * arguments are `char **`. */
gint sqlenvfs_time_name_cmp(gconstpointer a, gconstpointer b);

G_END_DECLS
