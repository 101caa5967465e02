/*
 * lg2clone URL DIR - the least a libgit2 program does to clone: git_clone()
 * with default options.  bench.py times it next to the clone stage to tell
 * the stage's own cost from libgit2's.
 */
#include <git2.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: lg2clone URL DIR\n");
		return 2;
	}
	git_libgit2_init();
	git_repository *repo = NULL;
	int rc = git_clone(&repo, argv[1], argv[2], NULL);
	if (rc < 0) {
		const git_error *e = git_error_last();
		fprintf(stderr, "lg2clone: %s\n", e ? e->message : "clone failed");
	}
	git_repository_free(repo);
	git_libgit2_shutdown();
	return rc < 0;
}
