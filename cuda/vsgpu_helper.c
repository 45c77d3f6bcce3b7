/*-------------------------------------------------------------------------
 *
 * vsgpu_helper.c
 *	  vecstore-gpu-helper: the one process that touches CUDA.
 *
 * The vecstore background worker (src/vsgpu.c) starts this program with
 * its standard input and output on pipes, and talks to it in lines of
 * text.  The helper first opens the device and announces the outcome:
 *
 *	READY <total bytes> <memory limit bytes> <device name>
 *	NODEVICE <reason>
 *
 * (after NODEVICE it exits).  Then it answers the worker's requests until
 * its input ends (the worker stopped or died) or QUIT:
 *
 *	STATUS		->	STATUS <device bytes in use>
 *	QUIT		->	(exits 0)
 *
 * A crash of this process, whatever the driver does, costs the database
 * nothing: the worker sees the exit, records it, and starts a new helper
 * after a backoff while backends use the CPU.
 *
 * Options:
 *	--memory-limit BYTES	the share of device memory it may use
 *							(vecstore.gpu_memory; 0: 80% of the device)
 *	--emulate				no device: announce "CPU emulation" and serve
 *							requests on the CPU, so that the service can be
 *							tested (supervision, restarts) without a GPU
 *
 * IDENTIFICATION
 *	  cuda/vsgpu_helper.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vsgpu_helper.h"

#define LINE_MAX_LEN	1024

/*
 * reply - one line to the worker; exit when it is gone (a broken pipe).
 */
static void
reply(const char *fmt,...) __attribute__((format(printf, 1, 2)));

static void
reply(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	if (fflush(stdout) != 0 || ferror(stdout))
		exit(0);
}

int
main(int argc, char **argv)
{
	VsGpuDeviceInfo info;
	char		err[512];
	char		line[LINE_MAX_LEN];
	int			emulate = 0;
	uint64_t	limit = 0;

	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--emulate") == 0)
			emulate = 1;
		else if (strcmp(argv[i], "--memory-limit") == 0 && i + 1 < argc)
			limit = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--version") == 0)
		{
			printf("vecstore-gpu-helper (%s)\n",
				   vsgpu_built_with_cuda() ? "CUDA" : "without CUDA");
			return 0;
		}
		else
		{
			fprintf(stderr, "vecstore-gpu-helper: unknown argument \"%s\"\n", argv[i]);
			return 2;
		}
	}

	if (emulate)
	{
		memset(&info, 0, sizeof(info));
		snprintf(info.name, sizeof(info.name), "CPU emulation");
	}
	else if (vsgpu_device_open(&info, err, sizeof(err)) != 0)
	{
		/* one line, no newlines inside */
		for (char *p = err; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		reply("NODEVICE %s", err);
		return 0;
	}
	if (limit == 0 || (info.total_bytes > 0 && limit > info.total_bytes))
		limit = info.total_bytes / 10 * 8;
	reply("READY %" PRIu64 " %" PRIu64 " %s", info.total_bytes, limit, info.name);

	while (fgets(line, sizeof(line), stdin) != NULL)
	{
		line[strcspn(line, "\r\n")] = '\0';
		if (strcmp(line, "STATUS") == 0)
			reply("STATUS %" PRIu64, emulate ? (uint64_t) 0 : vsgpu_device_used());
		else if (strcmp(line, "QUIT") == 0)
			break;
		else
			reply("ERROR unknown request \"%.64s\"", line);
	}
	if (!emulate)
		vsgpu_device_close();
	return 0;
}
