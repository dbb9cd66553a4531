// The service of the benchmark's thrift workload: one call that sends a
// body and gets it back, so every result can be checked.
namespace py txn_bench_echo

service Echo {
  binary echo(1: binary data),
}
