// The service the Thrift-over-AMQP tests generate code for.
namespace py txn_test_calc

exception DivideByZero {
  1: string message
}

service Calculator {
  i32 add(1: i32 a, 2: i32 b),
  i32 divide(1: i32 a, 2: i32 b) throws (1: DivideByZero oops),
  // the handler raises an exception the IDL does not declare
  string fail(1: string why),
  // the handler never answers
  void hang(),
  binary echo(1: binary data),
  oneway void notify(1: string what),
}
