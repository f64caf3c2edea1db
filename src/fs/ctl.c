/*
 * ctl.c — the control files ctl/<op>.
 *
 * A shell's `echo 1 > ctl/backup` arrives as open(O_WRONLY|O_TRUNC), maybe a
 * truncate (setattr size 0, accepted in fs.c), flush, write, flush, release.
 * The write is what triggers the operation:
 *
 *   write --parse--> EINVAL/ENOENT at once if the text names nothing
 *         --queue--> the op thread runs one operation at a time (ops.h)
 *         --reply--> the write returns when the operation has finished, with
 *                    its byte count, or the errno that fits the error
 *                    (EPERM refused by a safety check, EIO integrity or I/O,
 *                    ENOSPC, ...; error.h sqlenvfs_error_to_errno)
 *
 * The write is answered from the op thread, so writers waiting their turn
 * hold no worker thread of the session. Reading ctl/<op> gives the last
 * result of that operation in one line (ops.h sqlenvfs_op_result_line).
 *
 * Shutdown (unmount, signal): fs_ctl_stop() lets the running operation
 * finish (each operation builds aside and renames into place, so it either
 * completes or leaves nothing that looks finished), answers writers still
 * queued with EINTR without starting their operations, and joins the thread.
 */
#include "fs.h"

#include "sqlenvfs/error.h"

#include <errno.h>

typedef struct {
  fuse_req_t req; /* NULL: the stop marker */
  SqlenvfsOp op;
  SqlenvfsOpArgs args;
  size_t size;
} CtlJob;

struct _FsCtl {
  Fs *fs;
  GAsyncQueue *queue;
  GThread *thread;
  gint stopping; /* atomic */
};

static void
job_free(CtlJob *job)
{
  sqlenvfs_op_args_clear(&job->args);
  g_free(job);
}

static gpointer
run_thread(gpointer data)
{
  FsCtl *ctl = data;
  for (;;) {
    CtlJob *job = g_async_queue_pop(ctl->queue);
    g_autoptr(GError) error = NULL;
    SqlenvfsOpOutcome out = { 0 };
    if (job->req == NULL) {
      job_free(job);
      break;
    }
    gboolean ok = sqlenvfs_ops_run(ctl->fs->ops, job->op, &job->args, &out, &error);
    fs_status_invalidate(ctl->fs);
    if (ok) {
      g_autofree char *summary = sqlenvfs_op_outcome_summary(&out);
      g_message("%s: %s", sqlenvfs_op_name(job->op), summary);
      fuse_reply_write(job->req, job->size);
    } else {
      g_warning("%s failed: %s", sqlenvfs_op_name(job->op), error->message);
      fuse_reply_err(job->req, sqlenvfs_error_to_errno(error));
    }
    sqlenvfs_op_outcome_clear(&out);
    job_free(job);
  }
  return NULL;
}

FsCtl *
fs_ctl_new(Fs *fs)
{
  FsCtl *ctl = g_new0(FsCtl, 1);
  ctl->fs = fs;
  ctl->queue = g_async_queue_new();
  return ctl;
}

void
fs_ctl_start(FsCtl *ctl)
{
  g_return_if_fail(ctl->thread == NULL);
  ctl->thread = g_thread_new("sqlenvfs-ops", run_thread, ctl);
}

void
fs_ctl_stop(FsCtl *ctl)
{
  CtlJob *job;
  if (ctl->thread == NULL)
    return;
  /* Queued writers go first: their operations are abandoned, not started. */
  g_async_queue_lock(ctl->queue);
  g_atomic_int_set(&ctl->stopping, 1);
  while ((job = g_async_queue_try_pop_unlocked(ctl->queue)) != NULL) {
    g_message("%s: abandoned at shutdown before it started", sqlenvfs_op_name(job->op));
    fuse_reply_err(job->req, EINTR);
    job_free(job);
  }
  g_async_queue_push_unlocked(ctl->queue, g_new0(CtlJob, 1));
  g_async_queue_unlock(ctl->queue);
  g_thread_join(ctl->thread);
  ctl->thread = NULL;
}

void
fs_ctl_free(FsCtl *ctl)
{
  if (ctl == NULL)
    return;
  fs_ctl_stop(ctl);
  g_async_queue_unref(ctl->queue);
  g_free(ctl);
}

char *
fs_ctl_read(FsCtl *ctl, SqlenvfsOp op)
{
  SqlenvfsOpResult res;
  g_autofree char *line = NULL;
  sqlenvfs_ops_last(ctl->fs->ops, op, &res);
  line = sqlenvfs_op_result_line(op, &res);
  sqlenvfs_op_result_clear(&res);
  return g_strconcat(line, "\n", NULL);
}

void
fs_ctl_write(FsCtl *ctl, fuse_req_t req, SqlenvfsOp op, const char *buf, size_t size)
{
  g_autoptr(GError) error = NULL;
  CtlJob *job = g_new0(CtlJob, 1);

  if (!sqlenvfs_op_args_parse(ctl->fs->root, op, buf, size, &job->args, &error)) {
    g_message("ctl/%s: %s", sqlenvfs_op_name(op), error->message);
    sqlenvfs_ops_record_refusal(ctl->fs->ops, op, error);
    fs_status_invalidate(ctl->fs);
    fuse_reply_err(req, sqlenvfs_error_to_errno(error));
    job_free(job);
    return;
  }
  job->req = req;
  job->op = op;
  job->size = size;
  /* Checked under the queue lock, so no job can land behind the stop marker. */
  g_async_queue_lock(ctl->queue);
  if (g_atomic_int_get(&ctl->stopping)) {
    g_async_queue_unlock(ctl->queue);
    fuse_reply_err(req, EINTR);
    job_free(job);
    return;
  }
  g_async_queue_push_unlocked(ctl->queue, job);
  g_async_queue_unlock(ctl->queue);
}
