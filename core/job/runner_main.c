/*
 * core/job/runner_main.c — main() of waved-job-exec, the job runner executable
 * (core/job/runner.c, docs/jobs.md). Not part of wavedlib: waved and the tests reach the
 * same code through wv_job_exec_main.
 */
#include "core/job/job.h"

int main(int argc, char **argv) { return wv_job_exec_main(argc, argv); }
