#-------------------------------------------------------------------------
#
# 019_gpu_protocol.pl
#     TAP test: the GPU helper program checks the protocol version of
#     what it is sent (src/vsgpu_protocol.h), on any machine.
#
# The helper is run by itself, as the GPU service's worker runs it
# (standard input and output as the request and answer lines), in its CPU
# emulation, so no GPU and no server are needed:
#
# 1. Its READY line names the protocol version the sources define
#    (VSGPU_PROTOCOL_VERSION), which the worker checks before it sends any
#    request.
# 2. A job whose header carries another version is refused with a reason
#    that names both versions; one of the right version but of another
#    kind is refused as such.  The job is a POSIX shared memory object
#    (/dev/shm), as the backends' dynamic shared memory segments are.
# 3. QUIT ends it.
#
# IDENTIFICATION
#     test/t/019_gpu_protocol.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use IPC::Open2;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = $ENV{VECSTORE_SRC} // '.';
my $header = "$src/src/vsgpu_protocol.h";
open(my $fh, '<', $header) or die "cannot read $header: $!";
my ($version) = join('', <$fh>) =~ /#define\s+VSGPU_PROTOCOL_VERSION\s+(\d+)/;
close($fh);
ok(defined $version, "VSGPU_PROTOCOL_VERSION found in $header");

my $pkglib = `pg_config --pkglibdir`;
chomp $pkglib;
my $helper = "$pkglib/vecstore-gpu-helper";
plan skip_all => "no helper at $helper" unless -x $helper;
plan skip_all => 'no /dev/shm for POSIX shared memory' unless -d '/dev/shm' && -w '/dev/shm';

my $pid = open2(my $out, my $in, $helper, '--emulate', '--batch-delay', '0');
$in->autoflush(1);

# 1. the version it speaks
my $ready = <$out>;
chomp $ready if defined $ready;
like($ready, qr/^READY \Q$version\E \d+ \d+ CPU emulation$/,
    "the helper's READY line names protocol version $version");

# the reply to one request line, skipping batch announcements
sub answer
{
    my ($line) = @_;
    print $in "$line\n";
    while (my $reply = <$out>)
    {
        chomp $reply;
        next if $reply =~ /^BATCH /;
        return $reply;
    }
    return '';
}

# a job segment: the head (magic, version, token), zeros up to 4 kB
my $name = "vecstore-test-019-$$";
sub job
{
    my ($magic, $ver, $token) = @_;
    open(my $shm, '>', "/dev/shm/$name") or die "cannot create /dev/shm/$name: $!";
    binmode($shm);
    my $head = pack('L< L< Q<', $magic, $ver, $token);
    print $shm $head . ("\0" x (4096 - length($head)));
    close($shm);
}

my $assign_magic = 0x56534741;    # "VSGA"
my $graph_magic = 0x56534747;     # "VSGG"

# 2. another version, then another kind of job
my $old = $version - 1;
job($assign_magic, $old, 7);
is(answer("ASSIGN 0 1 /$name 7"),
    "DONE 0 1 ERROR the job is of protocol version $old, the helper speaks $version",
    'a job of another protocol version is refused, naming both');

job($graph_magic, $version, 8);
is(answer("ASSIGN 1 2 /$name 8"), 'DONE 1 2 ERROR not an assignment job',
    'a job of the right version but another kind is refused as such');

job($assign_magic, $version, 9);
is(answer("ASSIGN 2 3 /$name 10"), 'DONE 2 3 ERROR the segment holds another job',
    'a job whose token is not the request line\'s is refused');

unlink("/dev/shm/$name");

# 3. QUIT
print $in "QUIT\n";
close($in);
waitpid($pid, 0);
is($? >> 8, 0, 'QUIT ends the helper with code 0');

done_testing();
