/*
 * fuzz_timefmt.c — the time parser (src/core/timefmt.c) on arbitrary text:
 * every form a user types and every backup/snapshot name read from a
 * directory listing.
 *
 * Beyond not crashing, it checks the contracts of timefmt.h on every time
 * the parser accepts: the ISO form round-trips exactly, the name form
 * round-trips to the millisecond, and name ordering agrees with the times.
 */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlenvfs/timefmt.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  fuzz_init_logging();
  return 0;
}

static void
fail(const char *what, const char *text, gint64 us)
{
  fprintf(stderr, "fuzz_timefmt: %s: input '%s' parsed as %" G_GINT64_FORMAT " us\n", what, text,
          us);
  abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autofree char *text = fuzz_strndup(data, size);
  g_autoptr(GError) error = NULL;
  SqlenvfsTime t = { 0 };
  gint64 name_us = 0;

  if (sqlenvfs_time_parse(text, &t, &error)) {
    if (error != NULL)
      fail("success with an error set", text, t.us);
    if (!t.is_latest) {
      g_autofree char *iso = sqlenvfs_time_format_iso(t.us);
      g_autofree char *name = sqlenvfs_time_format_name(t.us, TRUE);
      g_autofree char *local = sqlenvfs_time_format_local(t.us);
      SqlenvfsTime back = { 0 };
      gint64 name_back = 0;

      if (t.us < 0)
        fail("a time before the epoch", text, t.us);
      if (!sqlenvfs_time_parse(iso, &back, NULL) || back.is_latest || back.us != t.us)
        fail("the ISO form does not round-trip", text, t.us);
      if (!sqlenvfs_time_parse_name(name, &name_back) || name_back != t.us - t.us % 1000)
        fail("the name form does not round-trip", text, t.us);
      if (local == NULL)
        fail("no local form", text, t.us);
    }
  } else if (error == NULL || strstr(error->message, "not a time") == NULL) {
    fail("failure without a clear error", text, 0);
  }

  if (sqlenvfs_time_parse_name(text, &name_us)) {
    /* A name is also a time the user can type, and orders by its time. */
    if (!sqlenvfs_time_parse(text, &t, NULL) || t.us != name_us)
      fail("a name that is not a time", text, name_us);
    if (name_us >= G_USEC_PER_SEC) {
      g_autofree char *earlier = sqlenvfs_time_format_name(name_us - G_USEC_PER_SEC, FALSE);
      const char *a = text, *b = earlier;
      if (sqlenvfs_time_name_cmp(&a, &b) <= 0 || sqlenvfs_time_name_cmp(&b, &a) >= 0)
        fail("a name that does not sort after an earlier one", text, name_us);
    }
  } else {
    const char *a = text, *b = "20261128T161400Z";
    if (sqlenvfs_time_name_cmp(&a, &b) >= 0)
      fail("a foreign name that does not sort first", text, 0);
  }
  return 0;
}
