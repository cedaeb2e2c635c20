// Package clitest holds what the tests of the project's commands share:
// building the command under test as a program and checking how it
// answers -h and a refused command line.
//
// What it must not do: be imported outside _test.go files.
package clitest
