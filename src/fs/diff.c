/*
 * diff.c — diff/<t1>/<t2>/<db>.sql and <db>.summary: the script or summary
 * of `sqlenvfs diff` between two times, made whole in memory and served
 * read-only (the mount's rendering of sqlenvfs_diff_run, diff.h).
 *
 * A document is made when its file is looked up, so that a stat shows its
 * real size (tar, rsync -a and cp copy that many bytes), and kept for the
 * open that follows: the last DOCS_MAX made, DOCS_MAX_BYTES in all, keyed
 * by the database, the kind and the two times as resolved (a name such as
 * `latest` resolves to a later time once more is archived, and so to
 * another document). A document larger than that is made again at the
 * open. The state at a time never changes, so neither does its document.
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
    return fs_pitr_resolve_time(fs->pitr, "diff", name, time_us, is_lasting, error);
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

#define DOCS_MAX 8
#define DOCS_MAX_BYTES ((gsize)64 << 20)

typedef struct {
  char *db;
  gboolean is_summary;
  gint64 from_us, to_us;
  GBytes *doc;
} DiffDoc;

struct _FsDiffCache {
  GMutex lock;
  GQueue docs; /* DiffDoc *, the last used first */
  gsize bytes;
};

static void
diff_doc_free(gpointer p)
{
  DiffDoc *d = p;
  g_free(d->db);
  g_bytes_unref(d->doc);
  g_free(d);
}

FsDiffCache *
fs_diff_cache_new(void)
{
  FsDiffCache *c = g_new0(FsDiffCache, 1);
  g_mutex_init(&c->lock);
  g_queue_init(&c->docs);
  return c;
}

void
fs_diff_cache_free(FsDiffCache *c)
{
  if (c == NULL)
    return;
  g_queue_clear_full(&c->docs, diff_doc_free);
  g_mutex_clear(&c->lock);
  g_free(c);
}

/* The kept document for the key, referenced, or NULL. Called locked. */
static GBytes *
find_locked(FsDiffCache *c, const char *db, gboolean is_summary, gint64 from_us, gint64 to_us)
{
  for (GList *l = c->docs.head; l != NULL; l = l->next) {
    DiffDoc *d = l->data;
    if (d->is_summary == is_summary && d->from_us == from_us && d->to_us == to_us &&
        strcmp(d->db, db) == 0) {
      g_queue_unlink(&c->docs, l);
      g_queue_push_head_link(&c->docs, l);
      return g_bytes_ref(d->doc);
    }
  }
  return NULL;
}

GBytes *
fs_diff_document(Fs *fs, const char *db, gboolean is_summary, gint64 from_us, gint64 to_us,
                 GError **error)
{
  FsDiffCache *c = fs->diffs;
  SqlenvfsTime from = { .us = from_us }, to = { .us = to_us };
  GString *out;
  GBytes *doc;

  g_mutex_lock(&c->lock);
  doc = find_locked(c, db, is_summary, from_us, to_us);
  g_mutex_unlock(&c->lock);
  if (doc != NULL)
    return doc;
  /* Made outside the lock: a long diff holds up no other one. */
  out = g_string_new(NULL);
  if (!sqlenvfs_diff_run(fs->root, db, &from, &to, is_summary, append, note, out, NULL,
                         error)) {
    g_string_free(out, TRUE);
    return NULL;
  }
  doc = g_string_free_to_bytes(out);
  if (g_bytes_get_size(doc) > DOCS_MAX_BYTES)
    return doc;
  g_mutex_lock(&c->lock);
  {
    GBytes *had = find_locked(c, db, is_summary, from_us, to_us); /* made meanwhile */
    if (had != NULL) {
      g_mutex_unlock(&c->lock);
      g_bytes_unref(doc);
      return had;
    }
  }
  {
    DiffDoc *d = g_new0(DiffDoc, 1);
    d->db = g_strdup(db);
    d->is_summary = is_summary;
    d->from_us = from_us;
    d->to_us = to_us;
    d->doc = g_bytes_ref(doc);
    g_queue_push_head(&c->docs, d);
    c->bytes += g_bytes_get_size(doc);
  }
  while (c->docs.length > DOCS_MAX || c->bytes > DOCS_MAX_BYTES) {
    DiffDoc *old = g_queue_pop_tail(&c->docs);
    c->bytes -= g_bytes_get_size(old->doc);
    diff_doc_free(old);
  }
  g_mutex_unlock(&c->lock);
  return doc;
}

GBytes *
fs_diff_render(Fs *fs, const FsWhere *where, GError **error)
{
  gint64 from_us, to_us;
  gboolean is_lasting;

  if (!fs_diff_resolve_time(fs, where->entry, &from_us, &is_lasting, error) ||
      !fs_diff_resolve_time(fs, where->to, &to_us, &is_lasting, error))
    return NULL;
  return fs_diff_document(fs, where->db, where->is_summary, from_us, to_us, error);
}
