/*
 * diff.c — diff/<t1>/<t2>/<db>.sql and <db>.summary: the script or summary
 * of `sqlenvfs diff` between two times, made whole in memory at open and
 * served read-only (the mount's rendering of sqlenvfs_diff_run, diff.h).
 */
#include "fs.h"

#include <string.h>

#include "sqlenvfs/diff.h"
#include "sqlenvfs/error.h"

gboolean
fs_diff_resolve_time(Fs *fs, const char *name, gint64 *time_us, gboolean *is_lasting,
                     GError **error)
{
  gint64 earliest, latest;

  if (strcmp(name, "earliest") != 0 && strcmp(name, "latest") != 0)
    return fs_pitr_resolve_time(fs->pitr, name, time_us, is_lasting, error);
  *is_lasting = FALSE;
  if (!fs_pitr_window(fs->pitr, &earliest, &latest, error))
    return FALSE;
  *time_us = name[0] == 'l' ? fs_pitr_latest_for(fs->pitr, 0, latest) : earliest;
  return TRUE;
}

GPtrArray *
fs_diff_list(Fs *fs, const FsWhere *where, GError **error)
{
  gint64 t1, t2;
  gboolean is_lasting;
  g_autoptr(GPtrArray) dbs = NULL;
  GPtrArray *names;

  if (!fs_diff_resolve_time(fs, where->entry, &t1, &is_lasting, error) ||
      !fs_diff_resolve_time(fs, where->to, &t2, &is_lasting, error))
    return NULL;
  dbs = fs_pitr_list_dbs(fs->pitr, t2, error);
  if (dbs == NULL)
    return NULL;
  names = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < dbs->len; i++) {
    g_ptr_array_add(names, g_strconcat(g_ptr_array_index(dbs, i), ".sql", NULL));
    g_ptr_array_add(names, g_strconcat(g_ptr_array_index(dbs, i), ".summary", NULL));
  }
  return names;
}

static void
append(gpointer user, const char *text, gsize len)
{
  g_string_append_len(user, text, (gssize) len);
}

static void
note(gpointer user, const char *message)
{
  (void) user;
  g_info("diff: %s", message);
}

char *
fs_diff_render(Fs *fs, const FsWhere *where, gsize *len, GError **error)
{
  SqlenvfsTime from = { 0 }, to = { 0 };
  gboolean is_lasting;
  GString *out;

  if (!fs_diff_resolve_time(fs, where->entry, &from.us, &is_lasting, error) ||
      !fs_diff_resolve_time(fs, where->to, &to.us, &is_lasting, error))
    return NULL;
  out = g_string_new(NULL);
  if (!sqlenvfs_diff_run(fs->root, where->db, &from, &to, where->is_summary, append, note, out,
                         NULL, error)) {
    g_string_free(out, TRUE);
    return NULL;
  }
  *len = out->len;
  return g_string_free(out, FALSE);
}
