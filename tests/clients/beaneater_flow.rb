#!/usr/bin/env ruby
# frozen_string_literal: true

# Producer/worker flow through the beaneater client library (Debian's
# ruby-beaneater).
#
# Usage: ruby tests/clients/beaneater_flow.rb PORT [--reference]
#
# Talks to a beanstalk server on 127.0.0.1:PORT (sprout, or beanstalkd to check
# this script). Every step asserts its result; the first failed check exits 1
# with a message naming the step. Exit 3 means beaneater is not installed.
# beaneater parses every stats reply with Ruby's YAML (Psych), so each stats
# call below is also a check that the server's YAML is well formed.
# --reference says the server is beanstalkd 1.12, which often never expires a
# reserved job's TTR unless the reserving connection sends another command (its
# connection "tick" is lost; beanstalkd issue #262, PR #334). With it the TTR
# step polls through the reserving connection, which makes beanstalkd notice;
# without it the step polls from another connection, as a drop-in must allow.

begin
  require 'beaneater'
rescue LoadError => e
  warn "beaneater is not installed (#{e.message}); apt-get install ruby-beaneater"
  exit 3
end
require 'socket'
require 'timeout'

PORT = Integer(ARGV.reject { |a| a.start_with?('--') }.first || 11_300)
REFERENCE = ARGV.include?('--reference')
ADDR = "127.0.0.1:#{PORT}"
TUBE = "be-jobs-#{Process.pid}"
OTHER = "be-other-#{Process.pid}"

class CheckFailed < StandardError; end
class TransientError < StandardError; end

$step = 'start'

def step(name)
  $step = name
  puts "- #{name}"
  $stdout.flush
end

def check(cond, what)
  raise CheckFailed, what unless cond
end

def eq(actual, expected, what)
  raise CheckFailed, "#{what}: expected #{expected.inspect}, got #{actual.inspect}" unless actual == expected
end

def raises(klass, what)
  value = yield
rescue klass
  nil
rescue StandardError => e
  raise CheckFailed, "#{what}: expected #{klass}, got #{e.class}: #{e.message}"
else
  raise CheckFailed, "#{what}: expected #{klass}, got a result: #{value.inspect}"
end

def wait_until(what, seconds = 5)
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
  until yield
    check(Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline, "timed out waiting: #{what}")
    sleep 0.02
  end
end

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

STATS_KEYS = %w[
  current_jobs_urgent current_jobs_ready current_jobs_reserved current_jobs_delayed
  current_jobs_buried cmd_put cmd_peek cmd_peek_ready cmd_peek_delayed cmd_peek_buried
  cmd_reserve cmd_reserve_with_timeout cmd_delete cmd_release cmd_use cmd_watch
  cmd_ignore cmd_bury cmd_kick cmd_touch cmd_stats cmd_stats_job cmd_stats_tube
  cmd_list_tubes cmd_list_tube_used cmd_list_tubes_watched cmd_pause_tube job_timeouts
  total_jobs max_job_size current_tubes current_connections current_producers
  current_workers current_waiting total_connections pid version rusage_utime
  rusage_stime uptime binlog_oldest_index binlog_current_index binlog_records_migrated
  binlog_records_written binlog_max_size draining id hostname os platform
].freeze

def main
  step 'connect a producer and a worker'
  producer = Beaneater.new(ADDR)
  worker = Beaneater.new(ADDR)
  tube = producer.tubes[TUBE]
  eq producer.tubes.used.name, 'default', 'list-tube-used before use'
  eq worker.tubes.watched.map(&:name), ['default'], 'list-tubes-watched at start'
  worker.tubes.watch!(TUBE)
  eq worker.tubes.watched.map(&:name), [TUBE], 'watch! replaces the watch list'

  step 'empty tube: reserve with timeout 0 times out, peeks find nothing'
  raises(Beaneater::TimedOutError, 'reserve-with-timeout 0') { worker.tubes.reserve(0) }
  eq tube.peek(:ready), nil, 'peek-ready on empty tube'
  eq tube.peek(:delayed), nil, 'peek-delayed on empty tube'
  eq tube.peek(:buried), nil, 'peek-buried on empty tube'

  step 'ttr: DEADLINE_SOON, then the job times out back to ready'
  tw = Beaneater.new(ADDR)
  tw.tubes.watch!(TUBE)
  id = Integer(tube.put('slow', ttr: 1)[:id])
  job = tw.tubes.reserve(1)
  eq Integer(job.id), id, 'reserve ttr=1 job'
  raises(Beaneater::DeadlineSoonError, 'reserve inside the safety margin') { tw.tubes.reserve(2) }
  poller = REFERENCE ? tw : producer # see --reference above
  wait_until('ttr expiry') { poller.jobs.find(id).stats.state == 'ready' }
  eq producer.jobs.find(id).stats.timeouts, 1, 'stats-job timeouts'
  check producer.stats.job_timeouts >= 1, 'stats job-timeouts'
  raises(Beaneater::NotFoundError, 'touch after timeout') { tw.connection.transmit("touch #{id}") }
  job = worker.tubes.reserve(1)
  eq Integer(job.id), id, 'timed-out job is reservable again'
  job.delete
  tw.close

  step 'put jobs with priorities, a delay and a ttr'
  ra = tube.put('job a', pri: 100, ttr: 30)
  eq ra[:status], 'INSERTED', 'put status'
  eq producer.tubes.used.name, TUBE, 'put switched the used tube'
  a = Integer(ra[:id])
  b = Integer(tube.put('job b', pri: 10)[:id])
  c = Integer(tube.put('job c', pri: 10)[:id])
  d = Integer(tube.put('job d (delayed)', pri: 0, delay: 60)[:id])
  check(a < b && b < c && c < d, "job ids increase: #{[a, b, c, d]}")
  st = tube.stats
  eq st.name, TUBE, 'stats-tube name'
  eq st.current_jobs_ready, 3, 'stats-tube ready'
  eq st.current_jobs_urgent, 3, 'stats-tube urgent'
  eq st.current_jobs_delayed, 1, 'stats-tube delayed'
  eq st.total_jobs, 5, 'stats-tube total-jobs (with the ttr job)'
  eq st.current_using, 1, 'stats-tube current-using'
  eq st.current_watching, 1, 'stats-tube current-watching'
  eq st.pause, 0, 'stats-tube pause'
  eq st.current_jobs_buried, 0, 'stats-tube buried'

  step 'peek by id and by state'
  job = producer.jobs.find(a)
  eq [Integer(job.id), job.body], [a, 'job a'], 'peek a'
  eq producer.jobs[10**9], nil, 'peek of unknown id'
  eq Integer(tube.peek(:ready).id), b, 'peek-ready is the most urgent, oldest job'
  eq tube.peek(:delayed).body, 'job d (delayed)', 'peek-delayed'

  step 'reserve in priority order; stats-job while reserved'
  job = worker.tubes.reserve(1)
  eq [Integer(job.id), job.body], [b, 'job b'], 'first reserve'
  check job.reserved, 'job is marked reserved'
  js = job.stats
  eq js.id, b, 'stats-job id'
  eq js.tube, TUBE, 'stats-job tube'
  eq js.state, 'reserved', 'stats-job state'
  eq js.pri, 10, 'stats-job pri'
  eq js.ttr, 120, 'stats-job ttr (beaneater default)'
  eq js.reserves, 1, 'stats-job reserves'
  check js.time_left.between?(1, 120), "time-left: #{js.time_left}"
  %w[age delay file timeouts releases buries kicks].each do |k|
    check js.keys.include?(k), "stats-job key #{k} missing: #{js.keys}"
  end
  eq job.tube, TUBE, 'job.tube'
  eq tube.stats.current_jobs_reserved, 1, 'stats-tube reserved'

  step 'touch, release with a new priority, reserve again'
  eq job.touch[:status], 'TOUCHED', 'touch'
  eq job.release(pri: 5)[:status], 'RELEASED', 'release'
  js = producer.jobs.find(b).stats
  eq [js.state, js.pri, js.releases], ['ready', 5, 1], 'after release'
  job = worker.tubes.reserve(1)
  eq Integer(job.id), b, 'released job comes back first (pri 5)'

  step 'only the reserving connection may act on a reserved job'
  raises(Beaneater::NotFoundError, 'release by another connection') do
    producer.connection.transmit("release #{b} 1 0")
  end
  raises(Beaneater::NotFoundError, 'touch by another connection') do
    producer.connection.transmit("touch #{b}")
  end

  step 'bury, peek-buried, kick'
  eq job.bury(pri: 7)[:status], 'BURIED', 'bury'
  eq Integer(tube.peek(:buried).id), b, 'peek-buried'
  js = job.stats
  eq [js.state, js.pri, js.buries], ['buried', 7, 1], 'after bury'
  eq tube.stats.current_jobs_buried, 1, 'stats-tube buried'
  kicked = tube.kick(10)
  eq [kicked[:status], kicked[:id]], %w[KICKED 1], 'kick moves only the buried job'
  js = job.stats
  eq [js.state, js.kicks], ['ready', 1], 'after kick'

  step 'reserve and delete'
  job = worker.tubes.reserve(1)
  eq Integer(job.id), b, 'kicked job (pri 7) is next'
  eq job.delete[:status], 'DELETED', 'delete'
  check !job.exists?, 'deleted job no longer exists'
  eq producer.jobs.find(b), nil, 'peek of deleted job'
  raises(Beaneater::NotFoundError, 'second delete') { job.delete }

  step 'kick-job of a buried job and of a delayed job'
  job = worker.tubes.reserve(1)
  eq Integer(job.id), c, 'reserve c'
  job.bury
  eq job.kick[:status], 'KICKED', 'kick-job buried'
  eq job.stats.state, 'ready', 'kick-job buried -> ready'
  dj = producer.jobs.find(d)
  eq dj.kick[:status], 'KICKED', 'kick-job delayed'
  eq [dj.stats.state, dj.stats.kicks], ['ready', 1], 'kick-job delayed -> ready'
  raises(Beaneater::NotFoundError, 'kick-job of a ready job') { dj.kick }

  step 'drain in priority order'
  [d, c, a].each do |want|
    job = worker.tubes.reserve(1)
    eq Integer(job.id), want, 'drain order'
    job.delete
  end
  raises(Beaneater::TimedOutError, 'tube drained') { worker.tubes.reserve(0) }

  step 'many jobs come out in (priority, id) order'
  pris = {}
  40.times { |i| pris[Integer(tube.put("bulk #{i}", pri: (i * 3) % 7)[:id])] = (i * 3) % 7 }
  want = pris.keys.sort_by { |id| [pris[id], id] }
  got = want.map do
    j = worker.tubes.reserve(1)
    j.delete
    Integer(j.id)
  end
  eq got, want, 'bulk reserve order'

  step 'delayed job becomes ready; reserve-with-timeout waits for it'
  t0 = now
  id = Integer(tube.put('later', delay: 1)[:id])
  eq producer.jobs.find(id).stats.state, 'delayed', 'delayed state'
  job = worker.tubes.reserve(5)
  waited = now - t0
  eq Integer(job.id), id, 'reserve got the delayed job'
  check waited >= 0.5 && waited < 4, "delayed job waited #{waited.round(2)}s"
  job.delete

  step 'a worker loop (jobs.register / process!) handles a batch, retrying one job'
  bodies = %w[one two three fail-once]
  bodies.each { |body| tube.put(body) }
  seen = []
  attempts = Hash.new(0)
  loop_client = Beaneater.new(ADDR)
  loop_client.jobs.register(TUBE, retry_on: [TransientError], max_retries: 2) do |j|
    attempts[j.body] += 1
    seen << j.body
    raise TransientError, 'transient failure' if j.body == 'fail-once' && attempts[j.body] == 1

    raise Beaneater::AbortProcessingError if j.body == 'fail-once'
  end
  Timeout.timeout(15) { loop_client.jobs.process!(reserve_timeout: 5, release_delay: 0) }
  eq seen.first(3), %w[one two three], 'worker loop order'
  eq attempts['fail-once'], 2, 'failed job was released and retried'
  # AbortProcessingError leaves the job reserved; the ensure clause buries it.
  buried = tube.peek(:buried)
  check !buried.nil?, 'aborted job was buried by process!'
  eq buried.body, 'fail-once', 'buried body'
  eq buried.stats.releases, 1, 'retried job was released once'
  buried.delete
  loop_client.close

  step 'a reserved job returns to ready when its connection closes'
  id = Integer(tube.put('orphan')[:id])
  w2 = Beaneater.new(ADDR)
  w2.tubes.watch!(TUBE)
  eq Integer(w2.tubes.reserve(1).id), id, 'second worker reserves'
  w2.close
  wait_until('release on disconnect') { producer.jobs.find(id).stats.state == 'ready' }
  worker.tubes.reserve(1).delete

  step 'watch and ignore'
  worker.tubes.watch(OTHER)
  eq worker.tubes.watched.map(&:name).sort, [TUBE, OTHER].sort, 'watch list'
  other = producer.tubes[OTHER]
  id = Integer(other.put('from the other tube')[:id])
  job = worker.tubes.reserve(1)
  eq Integer(job.id), id, 'reserve from any watched tube'
  job.delete
  worker.tubes.ignore(OTHER)
  eq worker.tubes.watched.map(&:name), [TUBE], 'after ignore'
  raises(Beaneater::NotIgnoredError, 'ignoring the last tube') { worker.tubes.ignore(TUBE) }
  other.put('not watched')
  raises(Beaneater::TimedOutError, 'ignored tube is not reserved from') { worker.tubes.reserve(0) }
  names = producer.tubes.all.map(&:name)
  ['default', TUBE, OTHER].each { |t| check names.include?(t), "list-tubes has #{t}: #{names}" }
  raises(Beaneater::InvalidTubeName, 'bad tube name') { worker.tubes.watch('-bad') }

  step 'pause-tube'
  eq tube.pause(1)[:status], 'PAUSED', 'pause-tube'
  id = Integer(tube.put('paused')[:id])
  raises(Beaneater::TimedOutError, 'reserve from a paused tube') { worker.tubes.reserve(0) }
  st = tube.stats
  eq st.pause, 1, 'stats-tube pause'
  check st.pause_time_left.between?(0, 1), "pause-time-left: #{st.pause_time_left}"
  eq st.cmd_pause_tube, 1, 'stats-tube cmd-pause-tube'
  t0 = now
  job = worker.tubes.reserve(5)
  eq Integer(job.id), id, 'reserve after the pause ends'
  check now - t0 < 4, 'pause lasted too long'
  job.delete
  raises(Beaneater::NotFoundError, 'pause-tube of unknown tube') { producer.tubes['no-such-tube-x'].pause(1) }

  step 'binary body, job size limit, tube.clear'
  body = (0..255).map(&:chr).join.b + "\r\n\r\n".b
  id = Integer(tube.put(body)[:id])
  eq producer.jobs.find(id).body.b, body, 'binary round trip'
  max = producer.stats.max_job_size
  id = Integer(tube.put('x' * max)[:id])
  eq producer.jobs.find(id).body.bytesize, max, 'body of exactly max-job-size'
  raises(Beaneater::JobTooBigError, 'body over max-job-size') { tube.put('x' * (max + 1)) }
  eq producer.tubes.used.name, TUBE, 'connection still usable after JOB_TOO_BIG'
  tube.put('buried later')
  worker.tubes.reserve(1).bury
  tube.put('delayed', delay: 100)
  tube.clear
  st = tube.stats
  eq [st.current_jobs_ready, st.current_jobs_buried, st.current_jobs_delayed], [0, 0, 0], 'tube.clear'

  step 'stats (parsed from YAML by beaneater)'
  stats = producer.stats
  STATS_KEYS.each { |k| check stats.keys.include?(k), "stats key #{k} missing" }
  (STATS_KEYS - %w[version rusage_utime rusage_stime draining id hostname os platform]).each do |k|
    check stats[k].is_a?(Integer), "stats #{k} is not an integer: #{stats[k].inspect}"
  end
  check stats.version.is_a?(String) && !stats.version.empty?, "version: #{stats.version.inspect}"
  eq stats.draining, false, 'draining (YAML boolean)'
  check stats.rusage_utime.is_a?(Numeric), "rusage-utime: #{stats.rusage_utime.inspect}"
  check stats.cmd_put >= 50, "cmd-put: #{stats.cmd_put}"
  check stats.current_connections >= 2, "current-connections: #{stats.current_connections}"
  check stats.current_tubes >= 3, "current-tubes: #{stats.current_tubes}"
  check stats.uptime >= 0, "uptime: #{stats.uptime}"

  [producer, worker].each(&:close)
  puts 'beaneater flow: all checks passed'
end

begin
  main
rescue CheckFailed => e
  warn "FAILED at step '#{$step}': #{e.message}"
  exit 1
rescue StandardError, Timeout::Error => e
  warn e.full_message
  warn "FAILED at step '#{$step}': unexpected #{e.class}: #{e.message}"
  exit 1
end
