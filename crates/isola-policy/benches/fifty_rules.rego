# A 50-rule policy for benchmarks (benches/decide.rs, examples/latency.rs): rules by
# function name, by argument prefix and by counts, as a busy deployment might have.
package isola

deny contains "svc0.drop is never allowed" if input.call.function == "svc0.drop"

deny contains "svc1.drop is never allowed" if input.call.function == "svc1.drop"

deny contains "svc2.drop is never allowed" if input.call.function == "svc2.drop"

deny contains "svc3.drop is never allowed" if input.call.function == "svc3.drop"

deny contains "svc4.drop is never allowed" if input.call.function == "svc4.drop"

deny contains "svc5.drop is never allowed" if input.call.function == "svc5.drop"

deny contains "svc6.drop is never allowed" if input.call.function == "svc6.drop"

deny contains "svc7.drop is never allowed" if input.call.function == "svc7.drop"

deny contains "svc8.drop is never allowed" if input.call.function == "svc8.drop"

deny contains "svc9.drop is never allowed" if input.call.function == "svc9.drop"

deny contains "svc10.drop is never allowed" if input.call.function == "svc10.drop"

deny contains "svc11.drop is never allowed" if input.call.function == "svc11.drop"

deny contains "svc12.drop is never allowed" if input.call.function == "svc12.drop"

deny contains "svc13.drop is never allowed" if input.call.function == "svc13.drop"

deny contains "svc14.drop is never allowed" if input.call.function == "svc14.drop"

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/0/")
	msg := sprintf("%s is under /protected/0/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/1/")
	msg := sprintf("%s is under /protected/1/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/2/")
	msg := sprintf("%s is under /protected/2/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/3/")
	msg := sprintf("%s is under /protected/3/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/4/")
	msg := sprintf("%s is under /protected/4/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/5/")
	msg := sprintf("%s is under /protected/5/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/6/")
	msg := sprintf("%s is under /protected/6/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/7/")
	msg := sprintf("%s is under /protected/7/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/8/")
	msg := sprintf("%s is under /protected/8/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/9/")
	msg := sprintf("%s is under /protected/9/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/10/")
	msg := sprintf("%s is under /protected/10/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/11/")
	msg := sprintf("%s is under /protected/11/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/12/")
	msg := sprintf("%s is under /protected/12/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/13/")
	msg := sprintf("%s is under /protected/13/", [input.call.arguments.path])
}

deny contains msg if {
	input.call.function == "fs.writeFile"
	startswith(input.call.arguments.path, "/protected/14/")
	msg := sprintf("%s is under /protected/14/", [input.call.arguments.path])
}

require_approval contains "more than 3 calls of svc0.update" if input.counts.function["svc0.update"] > 3

require_approval contains "more than 4 calls of svc1.update" if input.counts.function["svc1.update"] > 4

require_approval contains "more than 5 calls of svc2.update" if input.counts.function["svc2.update"] > 5

require_approval contains "more than 6 calls of svc3.update" if input.counts.function["svc3.update"] > 6

require_approval contains "more than 7 calls of svc4.update" if input.counts.function["svc4.update"] > 7

require_approval contains "more than 8 calls of svc5.update" if input.counts.function["svc5.update"] > 8

require_approval contains "more than 9 calls of svc6.update" if input.counts.function["svc6.update"] > 9

require_approval contains "more than 10 calls of svc7.update" if input.counts.function["svc7.update"] > 10

require_approval contains "more than 11 calls of svc8.update" if input.counts.function["svc8.update"] > 11

require_approval contains "more than 12 calls of svc9.update" if input.counts.function["svc9.update"] > 12

require_approval contains "a destructive call" if input.call.effect == "destructive"

require_approval contains "more than 100 writes" if input.counts.effect.write > 100

require_approval contains "a session-less destructive plan" if {
	input.execution.session == null
	some step in input.plan.steps
	step.effect == "destructive"
}

deny contains "tenant0 is read-only" if {
	input.call.effect != "read"
	input.call.arguments.tenant == "tenant0"
}

deny contains "tenant1 is read-only" if {
	input.call.effect != "read"
	input.call.arguments.tenant == "tenant1"
}

deny contains "tenant2 is read-only" if {
	input.call.effect != "read"
	input.call.arguments.tenant == "tenant2"
}

deny contains "tenant3 is read-only" if {
	input.call.effect != "read"
	input.call.arguments.tenant == "tenant3"
}

deny contains "tenant4 is read-only" if {
	input.call.effect != "read"
	input.call.arguments.tenant == "tenant4"
}

deny contains "no glob writes to secrets" if glob.match("**/secrets/**", ["/"], input.call.arguments.path)

deny contains "apply mode calls must be in a session" if {
	input.execution.mode == "apply"
	input.execution.session == null
}
