#-------------------------------------------------------------------------
#
# VsTest.pm
#     What several TAP tests (test/t/*.pl) share: killing a server the hard
#     way.  test/run.sh puts test/ on prove's include path (-I).
#
# IDENTIFICATION
#     test/VsTest.pm
#
#-------------------------------------------------------------------------
package VsTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter 'import';
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);

our @EXPORT_OK = qw(server_pids crash_node);

#
# server_pids - pids of every process whose working directory is the
# node's data directory: the postmaster and all its children (the
# vecstore GPU helper included), including ones orphaned by a killed
# postmaster.  Empty where /proc cannot tell.
#
sub server_pids
{
    my ($node) = @_;
    my $datadir = abs_path($node->data_dir);
    my @pids;

    opendir(my $dh, '/proc') or return ();
    while (my $entry = readdir $dh)
    {
        next unless $entry =~ /^\d+$/;
        my $cwd = readlink("/proc/$entry/cwd");
        push @pids, $entry if defined $cwd && $cwd eq $datadir;
    }
    closedir $dh;
    return @pids;
}

#
# crash_node - SIGKILL the postmaster, then every other server process, and
# wait until all of them are gone, reaped zombies included: a new
# postmaster refuses to start while the old postmaster's pid is alive (the
# lock file) or an orphaned backend keeps the old shared memory attached.
#
sub crash_node
{
    my ($node) = @_;
    my $can_see = -d '/proc/self' && defined readlink('/proc/self/cwd');
    my $postmaster_pid;

    open my $fh, '<', $node->data_dir . '/postmaster.pid'
      or die "could not read postmaster.pid: $!";
    chomp($postmaster_pid = <$fh>);
    close $fh;
    my @killed = ($postmaster_pid, server_pids($node));

    # postmaster first, so it cannot react to its children dying
    $node->kill9;
    kill 'KILL', @killed;

    if (!$can_see)
    {
        sleep 5;    # no /proc: give orphans time to notice and exit
        return;
    }
    my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
    while (1)
    {
        # processes forked just before the kill were not in @killed
        my @orphans = server_pids($node);
        kill 'KILL', @orphans;
        my @left = grep { kill 0, $_ } (@killed, @orphans);
        last unless @left;
        die "server processes @left still present after SIGKILL"
          if time() > $deadline;
        usleep(50_000);
    }
    return;
}

1;
