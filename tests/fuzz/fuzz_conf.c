/*
 * fuzz_conf.c — the settings parser (sqlenvfs.conf, src/core/root.c) on
 * arbitrary bytes, through sqlenvfs_root_open() as every command reads it.
 *
 * The input is written as the sqlenvfs.conf of a private root. Checks the
 * contract of root.h: the root opens whatever the file holds, with every
 * setting in its range (a section with an error read as if absent); each
 * error the file has is INVALID and names the file; the default database
 * resolves to its name exactly when [sqlenvfs] has no error.
 */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/util.h"

static char *root_dir;
static char *conf_path;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  g_autofree char *prod = NULL;

  fuzz_init_logging();
  root_dir = g_build_filename(fuzz_tmpdir(), "root", NULL);
  prod = g_build_filename(root_dir, "data", "prod", NULL);
  if (!sqlenvfs_mkdir_p(prod, 0700, NULL))
    abort();
  conf_path = g_build_filename(root_dir, "sqlenvfs.conf", NULL);
  return 0;
}

static void
fail(const char *what)
{
  fprintf(stderr, "fuzz_conf: %s\n", what);
  abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SqlenvfsRoot) root = NULL;

  fuzz_write_file(conf_path, data, size);
  root = sqlenvfs_root_open(root_dir, SQLENVFS_ROOT_MUST_EXIST, &error);
  if (root == NULL)
    fail("a root whose settings file has an error did not open");
  {
    const GError *e = sqlenvfs_root_settings_problem(root);
    g_autoptr(GPtrArray) all = sqlenvfs_root_settings_problems(root);
    if (e != NULL && (!g_error_matches(e, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID) ||
                      strstr(e->message, conf_path) == NULL))
      fail("a settings error that is not INVALID naming the file");
    if ((e == NULL) != (all->len == 0))
      fail("the first error and the list of them disagree");
  }
  {
    const SqlenvfsSettings *s = sqlenvfs_root_settings(root);
    g_autofree char *db = NULL;
    if (!sqlenvfs_db_name_is_valid(s->default_db))
      fail("default-db accepted but not a valid database name");
    if (s->daily_keep_days < 0 || s->daily_keep_count < 0 || s->snapshot_keep_days < 0 ||
        s->snapshot_keep_count < 0 || s->pitr_keep_days < 0 ||
        s->segment_max_bytes < (1 << 20) || s->checkpoint_pages < 1 || s->cache_max_bytes < 0 ||
        s->size_warn_bytes < 0 || s->backup_max_age_hours < 1 ||
        s->archive_lag_warn_seconds < 1)
      fail("a setting accepted outside its range");
    if (s->doctor_acknowledged_bugs == NULL)
      fail("acknowledged-bugs is NULL");
    for (char **id = s->doctor_acknowledged_bugs; *id; id++)
      if (**id == '\0' || strchr(*id, ',') != NULL)
        fail("an empty or unsplit acknowledged bug");
    /* The default database resolves like a name the user typed: this
     * root has no database, so one ending in .db is not taken for
     * another's file name, and resolves as written. */
    db = sqlenvfs_root_resolve_db(root, NULL, FALSE, NULL);
    if (!sqlenvfs_root_settings_need(root, "sqlenvfs", NULL)) {
      if (db != NULL)
        fail("the default database resolved though [sqlenvfs] has an error");
    } else if (db == NULL || strcmp(db, s->default_db) != 0) {
      fail("the default database does not resolve to its name");
    }
  }
  return 0;
}
