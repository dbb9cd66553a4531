// The service of examples/thrift_calculator.py.
namespace py calculator_example

exception DivideByZero {
  1: string message
}

service Calculator {
  i32 add(1: i32 a, 2: i32 b),
  i32 divide(1: i32 a, 2: i32 b) throws (1: DivideByZero oops),
}
