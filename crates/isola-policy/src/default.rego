# The policy Isola applies when no policy file is configured.
#
# Reads and writes are allowed; a destructive call, or a plan with a destructive
# step, waits for a person to approve it.
package isola

require_approval contains msg if {
	input.call.effect == "destructive"
	msg := sprintf("%s is destructive: the default policy asks a person", [input.call.function])
}

require_approval contains msg if {
	steps := [sprintf("#%d %s", [step.seq + 1, step.function]) |
		some step in input.plan.steps
		step.effect == "destructive"
	]
	count(steps) > 0
	msg := sprintf("the plan has destructive steps (%s): the default policy asks a person", [concat(", ", steps)])
}
