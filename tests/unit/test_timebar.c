/* Unit tests for timebar.c: the exact rows for given windows, bases and
 * widths (times in UTC: TZ is set before anything formats a time). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sqlenvfs/timebar.h"
#include "testutil.h"

#define S G_GINT64_CONSTANT(1000000)
#define T0 (G_GINT64_CONSTANT(1764288000) * S) /* 2025-11-28 00:00:00 UTC */

static void
assert_rows(char **rows, const char *const *want)
{
  guint i;
  for (i = 0; want[i] != NULL; i++) {
    ck_assert_msg(rows[i] != NULL, "row %u missing, expected '%s'", i, want[i]);
    ck_assert_msg(strcmp(rows[i], want[i]) == 0, "row %u:\n  got  '%s'\n  want '%s'", i,
                  rows[i], want[i]);
  }
  ck_assert_msg(rows[i] == NULL, "unexpected row %u: '%s'", i, rows[i]);
}

/* Three windows of "app": a gap before the second, an outage before the
 * third; bases, two of them in one column; 50 columns of 100 s each. */
START_TEST(test_gap_outage_bases)
{
  const SqlenvfsTimebarWindow wins[] = {
    { T0, T0 + 2000 * S, SQLENVFS_BEFORE_START },
    { T0 + 2300 * S, T0 + 3000 * S, SQLENVFS_BEFORE_GAP },
    { T0 + 3400 * S, T0 + 4000 * S, SQLENVFS_BEFORE_OUTAGE },
  };
  const SqlenvfsTimebarBase bases[] = {
    { T0, SQLENVFS_KIND_SNAPSHOT },
    { T0 + 2300 * S, SQLENVFS_KIND_BACKUP },
    { T0 + 3400 * S, SQLENVFS_KIND_SNAPSHOT },
    { T0 + 3450 * S, SQLENVFS_KIND_BACKUP },
  };
  const SqlenvfsTimebarDb db = { "app", wins, 3, bases, 4 };
  const char *const want[] = {
    "history, one column = 100 s",
    "       S                      B          *",
    "  app  ====================xxxx======~~~~~======.........",
    "       2025-11-28 00:00:00 +00:00",
    "                               2025-11-28 01:23:20 +00:00",
    "legend:  = recoverable  x gap: commits lost or damaged",
    "         ~ outage: nothing lost  . not recoverable",
    "         B backup  S snapshot  * both",
    NULL,
  };
  g_auto(GStrv) rows = sqlenvfs_timebar_render(&db, 1, T0 + 5000 * S, 57);
  assert_rows(rows, want);
}
END_TEST

/* A gap of one millisecond in two days is still one column of x; two
 * databases share the axis; a database with no base has no bases row. */
START_TEST(test_short_gap_two_dbs)
{
  const SqlenvfsTimebarWindow a[] = {
    { T0, T0 + 86400 * S, SQLENVFS_BEFORE_START },
    { T0 + 86400 * S + 1000, T0 + 172800 * S, SQLENVFS_BEFORE_DAMAGE },
  };
  const SqlenvfsTimebarWindow b[] = {
    { T0 + 129600 * S, T0 + 172800 * S, SQLENVFS_BEFORE_START },
  };
  const SqlenvfsTimebarDb dbs[] = { { "app", a, 2, NULL, 0 }, { "log", b, 1, NULL, 0 } };
  const char *const want[] = {
    "history, one column = 60 min",
    "  app  ========================x=======================",
    "  log  ....................................============",
    "       2025-11-28 00:00:00 +00:00",
    "                             2025-11-30 00:00:00 +00:00",
    "legend:  = recoverable  x gap: commits lost or damaged",
    "         ~ outage: nothing lost  . not recoverable",
    "         B backup  S snapshot  * both",
    NULL,
  };
  g_auto(GStrv) rows = sqlenvfs_timebar_render(dbs, 2, T0 + 172800 * S, 55);
  g_auto(GStrv) narrow = sqlenvfs_timebar_render(dbs, 2, T0 + 172800 * S, 10);
  assert_rows(rows, want);
  /* Below the minimum width, laid out for it: 33 columns of bar here. */
  ck_assert_uint_eq(strlen(narrow[1]), SQLENVFS_TIMEBAR_MIN_WIDTH);
}
END_TEST

/* No row is wider than the width asked for, at any width from the
 * minimum up; and nothing to draw says so. */
START_TEST(test_width_bound_and_empty)
{
  const SqlenvfsTimebarWindow wins[] = {
    { T0 + 10 * S, T0 + 20 * S, SQLENVFS_BEFORE_START },
    { T0 + 30 * S, T0 + 40 * S, SQLENVFS_BEFORE_OUTAGE },
  };
  const SqlenvfsTimebarBase bases[] = { { T0, SQLENVFS_KIND_BACKUP } };
  const SqlenvfsTimebarDb db = { "a-very-long-database-name", wins, 2, bases, 1 };
  const SqlenvfsTimebarDb none = { "app", NULL, 0, NULL, 0 };
  g_auto(GStrv) empty = sqlenvfs_timebar_render(&none, 1, T0, 80);

  for (guint w = SQLENVFS_TIMEBAR_MIN_WIDTH; w <= 200; w++) {
    g_auto(GStrv) rows = sqlenvfs_timebar_render(&db, 1, T0 + 50 * S, w);
    for (char **r = rows; *r; r++) {
      ck_assert_msg(g_utf8_strlen(*r, -1) <= (glong)w, "width %u: row '%s' is wider", w, *r);
      ck_assert_msg(**r == '\0' || !g_ascii_isspace((*r)[strlen(*r) - 1]),
                    "width %u: row '%s' ends with a blank", w, *r);
    }
    /* The long name is cut to 16 characters, its last one '~'. */
    ck_assert_msg(g_str_has_prefix(rows[2], "  a-very-long-dat~  "), "%s", rows[2]);
    /* Wide enough, both times are on one row, at the ends of the bar. */
    if (w >= 20 + 26 + 1 + 26) {
      ck_assert_msg(g_str_has_prefix(rows[3], "                    2025-11-28 00:00:00 +00:00 "),
                    "%s", rows[3]);
      ck_assert_msg(g_str_has_suffix(rows[3], " 2025-11-28 00:00:50 +00:00") &&
                      strlen(rows[3]) == w, "%s", rows[3]);
    }
  }
  ck_assert_str_eq(empty[0], "history: no backup, snapshot or recoverable window yet");
  ck_assert_ptr_null(empty[1]);
}
END_TEST

static Suite *
timebar_suite(void)
{
  Suite *s = suite_create("timebar");
  TCase *tc = tcase_create("timebar");
  tcase_add_test(tc, test_gap_outage_bases);
  tcase_add_test(tc, test_short_gap_two_dbs);
  tcase_add_test(tc, test_width_bound_and_empty);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  g_setenv("TZ", "UTC", TRUE);
  tzset();
  return testutil_run(timebar_suite());
}
