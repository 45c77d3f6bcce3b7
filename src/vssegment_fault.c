/*-------------------------------------------------------------------------
 *
 * vssegment_fault.c
 *	  Faults in segment mappings: an ERROR of the statement, not a signal
 *	  that kills the backend.
 *
 * A segment file is mapped with MAP_SHARED.  When an operator shrinks a
 * mapped file (truncate, cp over it, rsync --inplace), a read of a page
 * past the file's new end raises SIGBUS, whose default action kills the
 * backend, and the postmaster then restarts every session.  Files are
 * never shrunk by vecstore itself (vssegment.c writes a new file and
 * renames it), so this is damage from outside; it must cost at most the
 * statement.
 *
 * The code that reads mapped bytes runs inside VsMappedRun, with a
 * recovery point.  The SIGBUS handler installed here looks at the
 * faulting address: inside a range registered by vssegment.c (every
 * mapping of segment files) and with a recovery point set, it jumps back
 * to it, VsMappedRun returns false, and its caller raises an ERROR
 * naming the index (VsSegmentFaulted), after marking its mapping stale so
 * that the next statement checks the files and rebuilds them from the
 * fork.  Any other SIGBUS gets what it would have
 * got without vecstore: the previous handler, or the default action.
 *
 * Jumping out of a signal handler is safe here because the only code that
 * can fault on these addresses is plain reads of mapped bytes (copies,
 * distance kernels, CRCs, graph searches): nothing that holds a spinlock
 * or is half way through changing shared state.  The handler is installed
 * with SA_NODEFER so that SIGBUS is not left blocked after the jump (a
 * second fault while it is blocked would kill the process).
 *
 * IDENTIFICATION
 *	  src/vssegment_fault.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "utils/memutils.h"

#include "vsam.h"

/* the innermost recovery point, or NULL outside VsMappedRun */
static sigjmp_buf *volatile VsFaultJump = NULL;

/* the address of the last fault jumped back from */
static void *volatile fault_addr = NULL;

/* the mapped ranges, as an array the handler can read without locks */
typedef struct VsFaultRange
{
	char	   *start;
	Size		len;
} VsFaultRange;

static VsFaultRange *ranges = NULL;
static int	nranges = 0;
static int	maxranges = 0;

static struct sigaction previous;
static bool installed = false;

/* is "addr" inside a registered range? */
static bool
in_ranges(const char *addr)
{
	for (int i = 0; i < nranges; i++)
	{
		if (addr >= ranges[i].start && addr < ranges[i].start + ranges[i].len)
			return true;
	}
	return false;
}

/*
 * sigbus_handler - jump back to the recovery point when the fault is a
 * read of a registered mapping; otherwise behave as if vecstore had
 * installed nothing.
 */
static void
sigbus_handler(int signo, siginfo_t *info, void *context)
{
	int			save_errno = errno;

	if (VsFaultJump != NULL && info != NULL && info->si_code > 0 &&
		in_ranges((const char *) info->si_addr))
	{
		fault_addr = info->si_addr;
		siglongjmp(*VsFaultJump, 1);
	}

	if (previous.sa_flags & SA_SIGINFO)
	{
		if (previous.sa_sigaction != NULL)
		{
			previous.sa_sigaction(signo, info, context);
			errno = save_errno;
			return;
		}
	}
	else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN &&
			 previous.sa_handler != NULL)
	{
		previous.sa_handler(signo);
		errno = save_errno;
		return;
	}

	/*
	 * The default action: a fault re-executes the faulting instruction when
	 * the handler returns, and now meets the default; a SIGBUS sent by
	 * kill() is raised again.
	 */
	signal(SIGBUS, SIG_DFL);
	if (info == NULL || info->si_code <= 0)
		raise(SIGBUS);
	errno = save_errno;
}

/*
 * VsFaultInit - install the SIGBUS handler (from VsSegmentInit, once per
 * process that loads the library; with shared_preload_libraries the
 * postmaster's handler is inherited by every backend).
 */
void
VsFaultInit(void)
{
	struct sigaction act;

	if (installed)
		return;
	memset(&act, 0, sizeof(act));
	act.sa_sigaction = sigbus_handler;
	act.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&act.sa_mask);
	if (sigaction(SIGBUS, &act, &previous) != 0)
	{
		elog(LOG, "vecstore could not install its SIGBUS handler: %m");
		return;
	}
	installed = true;
}

/*
 * VsFaultRangeAdd - a range of addresses now maps segment files.
 */
void
VsFaultRangeAdd(char *start, Size len)
{
	/*
	 * The handler runs only on a fault in a read of a mapping, never during
	 * this function (it reads no mapping), so the array may move.
	 */
	if (nranges == maxranges)
	{
		maxranges = Max(16, maxranges * 2);
		ranges = ranges == NULL ?
			MemoryContextAlloc(TopMemoryContext, maxranges * sizeof(VsFaultRange)) :
			repalloc(ranges, maxranges * sizeof(VsFaultRange));
	}
	ranges[nranges].start = start;
	ranges[nranges].len = len;
	nranges++;
}

/*
 * VsFaultRangeRemove - the range that starts at "start" is unmapped.
 */
void
VsFaultRangeRemove(char *start)
{
	for (int i = 0; i < nranges; i++)
	{
		if (ranges[i].start == start)
		{
			ranges[i] = ranges[nranges - 1];
			nranges--;
			return;
		}
	}
}

/*
 * VsFaultAddress - where the last fault that jumped back happened.
 */
void *
VsFaultAddress(void)
{
	return fault_addr;
}

/*
 * run_guarded - run fn(arg) so that an ERROR leaving it also removes the
 * recovery point VsMappedRun set ("outer" is the one to restore).  Kept
 * apart from VsMappedRun so that each function has one sigsetjmp.
 */
static pg_noinline void
run_guarded(void (*fn) (void *arg), void *arg, sigjmp_buf *outer)
{
	PG_TRY();
	{
		fn(arg);
	}
	PG_FINALLY();
	{
		VsFaultJump = outer;
	}
	PG_END_TRY();
}

/*
 * VsMappedRun - run fn(arg), which reads segment mappings, with a recovery
 * point for SIGBUS on them.  True when it ran to its end; false when a
 * read of a mapping faulted, with PostgreSQL's error stack as it was at
 * the call: the caller cleans up and raises its error (VsSegmentFaulted).
 * Nothing "fn" changed may be relied on after a fault.  An ERROR inside
 * propagates as usual.
 */
bool
VsMappedRun(void (*fn) (void *arg), void *arg)
{
	sigjmp_buf *volatile outer = VsFaultJump;
	sigjmp_buf *volatile save_exception = PG_exception_stack;
	ErrorContextCallback *volatile save_context = error_context_stack;
	sigjmp_buf	local;

	if (sigsetjmp(local, 0) != 0)
	{
		PG_exception_stack = save_exception;
		error_context_stack = save_context;
		VsFaultJump = outer;
		return false;
	}
	VsFaultJump = &local;
	run_guarded(fn, arg, outer);
	VsFaultJump = outer;
	return true;
}
