#!/usr/bin/perl
# One fold of SpamAssassin's cross-validation for bench/accuracy.py:
#   sa_eval.pl WORKDIR LISTFILE
# LISTFILE lines are "train-ham PATH", "train-spam PATH", "test-ham PATH"
# or "test-spam PATH". Bayes is trained from scratch (in WORKDIR) on the
# train lines, then each test message is checked with local tests only
# (no network) and printed as "KIND SCORE IS_SPAM PATH".
use strict;
use warnings;
use Mail::SpamAssassin;

my ($work, $list) = @ARGV;
die "usage: sa_eval.pl WORKDIR LISTFILE\n" unless defined $list;

my $sa = Mail::SpamAssassin->new({
    local_tests_only   => 1,
    dont_copy_prefs    => 1,
    userstate_dir      => $work,
    userprefs_filename => "$work/user_prefs",
    post_config_text   => "use_bayes 1\nbayes_auto_learn 0\nbayes_path $work/bayes\n"
        . "use_auto_whitelist 0\nuse_txrep 0\nskip_rbl_checks 1\ndns_available no\n",
});
$sa->init(1);

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or die "$path: $!\n";
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text;
}

open(my $lf, '<', $list) or die "$list: $!\n";
my @items = map { chomp; [split / /, $_, 2] } <$lf>;
close $lf;

$sa->init_learner({ caller_will_untie => 1, no_relearn => 1 });
for my $it (grep { $_->[0] =~ /^train-/ } @items) {
    my $mail = $sa->parse(slurp($it->[1]));
    my $st = $sa->learn($mail, undef, $it->[0] eq 'train-spam', 0);
    $st->finish;
    $mail->finish;
}
$sa->rebuild_learner_caches();
$sa->finish_learner();

$| = 1;
for my $it (grep { $_->[0] =~ /^test-/ } @items) {
    my $mail = $sa->parse(slurp($it->[1]));
    my $st = $sa->check($mail);
    printf "%s %.2f %d %s\n", $it->[0], $st->get_score(), $st->is_spam() ? 1 : 0, $it->[1];
    $st->finish;
    $mail->finish;
}
