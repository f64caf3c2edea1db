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
 * Each write is a request of its own, except that blanks and line endings
 * written after an earlier write through the same open file end the line
 * that write began (fs.c fs_write): they run nothing.
 *
 * The write is answered from the op thread, so writers waiting their turn
 * hold no worker thread of the session. Reading ctl/<op> gives the last
 * result of that operation in one line (ops.h sqlenvfs_op_result_line).
 *
 * A writer interrupted by a signal while its operation waits its turn
 * (Ctrl-C on `echo 1 > ctl/refresh-dev` queued behind a long backup): the
 * kernel tells the daemon (FUSE_INTERRUPT), the job leaves the queue
 * without running, and the write fails with EINTR at once; the refusal
 * shows when the file is read and in the log. Without that the writer
 * could not be stopped, even by SIGKILL, until the operations ahead of it
 * had finished, and its operation ran all the same. An operation already
 * running is not interrupted: it finishes (see shutdown).
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
  fuse_req_t req;
  SqlenvfsOp op;
  SqlenvfsOpArgs args;
  size_t size;
} CtlJob;

struct _FsCtl {
  Fs *fs;
  GMutex lock;       /* guards queue and stopping */
  GCond cond;        /* a job was queued, or stop */
  GQueue queue;      /* CtlJob *, waiting their turn */
  GThread *thread;
  gboolean stopping;
};

static void
job_free(CtlJob *job)
{
  sqlenvfs_op_args_clear(&job->args);
  g_free(job);
}

/* A job whose writer was interrupted before it started: it does not run;
 * the write fails with EINTR, and the refusal is recorded. */
static void
abandon(FsCtl *ctl, CtlJob *job)
{
  g_autoptr(GError) error = NULL;
  g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_CANCELLED,
              "%s: not run: its writer was interrupted (a signal, such as Ctrl-C) while it "
              "waited for the operation ahead of it; write again to run it",
              sqlenvfs_op_name(job->op));
  g_message("ctl/%s", error->message);
  sqlenvfs_ops_record_refusal(ctl->fs->ops, job->op, error);
  fs_status_invalidate(ctl->fs);
  fuse_reply_err(job->req, EINTR);
  job_free(job);
}

/* FUSE_INTERRUPT for @req (libfuse calls this on the thread that read the
 * interrupt, @req valid meanwhile): a job still queued leaves the queue and
 * is abandoned; one that the op thread took is left alone. Only the queue
 * lock is taken here, never around a reply. */
static void
interrupted(fuse_req_t req, void *data)
{
  FsCtl *ctl = data;
  CtlJob *job = NULL;
  g_mutex_lock(&ctl->lock);
  for (GList *l = ctl->queue.head; l != NULL; l = l->next) {
    if (((CtlJob *)l->data)->req == req) {
      job = l->data;
      g_queue_delete_link(&ctl->queue, l);
      break;
    }
  }
  g_mutex_unlock(&ctl->lock);
  if (job != NULL)
    abandon(ctl, job);
}

static gpointer
run_thread(gpointer data)
{
  FsCtl *ctl = data;
  for (;;) {
    CtlJob *job;
    g_autoptr(GError) error = NULL;
    SqlenvfsOpOutcome out = { 0 };
    g_mutex_lock(&ctl->lock);
    while (g_queue_is_empty(&ctl->queue) && !ctl->stopping)
      g_cond_wait(&ctl->cond, &ctl->lock);
    job = g_queue_pop_head(&ctl->queue);
    g_mutex_unlock(&ctl->lock);
    if (job == NULL)
      break; /* stopping, and fs_ctl_stop() answered those queued */
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
  g_mutex_init(&ctl->lock);
  g_cond_init(&ctl->cond);
  g_queue_init(&ctl->queue);
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
  GQueue queued = G_QUEUE_INIT;
  CtlJob *job;
  if (ctl->thread == NULL)
    return;
  /* Queued writers go first: their operations are abandoned, not started. */
  g_mutex_lock(&ctl->lock);
  ctl->stopping = TRUE;
  queued = ctl->queue;
  g_queue_init(&ctl->queue);
  g_cond_broadcast(&ctl->cond);
  g_mutex_unlock(&ctl->lock);
  while ((job = g_queue_pop_head(&queued)) != NULL) {
    g_message("%s: abandoned at shutdown before it started", sqlenvfs_op_name(job->op));
    fuse_reply_err(job->req, EINTR);
    job_free(job);
  }
  g_thread_join(ctl->thread);
  ctl->thread = NULL;
}

void
fs_ctl_free(FsCtl *ctl)
{
  if (ctl == NULL)
    return;
  fs_ctl_stop(ctl);
  g_mutex_clear(&ctl->lock);
  g_cond_clear(&ctl->cond);
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
  /* Registered before the job is queued (the request is not answered
   * before then, so it is still ours): an interrupt that came already
   * calls interrupted() now, which finds nothing; it is seen below. */
  fuse_req_interrupt_func(req, interrupted, ctl);
  /* Checked under the queue lock, so no job is queued once stop began. */
  g_mutex_lock(&ctl->lock);
  if (ctl->stopping) {
    g_mutex_unlock(&ctl->lock);
    fuse_reply_err(req, EINTR);
    job_free(job);
    return;
  }
  if (fuse_req_interrupted(req)) {
    g_mutex_unlock(&ctl->lock);
    abandon(ctl, job);
    return;
  }
  g_queue_push_tail(&ctl->queue, job);
  g_cond_signal(&ctl->cond);
  g_mutex_unlock(&ctl->lock);
}
