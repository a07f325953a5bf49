fn main() {
    afl::fuzz!(|data: &[u8]| sprout_fuzz::beanstalkd_binlog::run(data));
}
