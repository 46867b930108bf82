// An imperative infrastructure change, the kind an agent writes: read the current state, and
// create what is missing. The graph of server-memory stands in for a cloud: entities are
// resources, relations say what contains what.
//
// Run it as a plan first (`isola plan`): the read is made, the changes are not, and the plan
// shows the subnet's observation and the relation as references to the VPC's result, known
// after apply.
const graph = await memory.readGraph({});
const names = graph.entities.map((e) => e.name);
if (names.includes("vpc-prod")) return "nothing to do";
const vpc = await memory.createEntities({
  entities: [{ name: "vpc-prod", entityType: "vpc", observations: ["10.0.0.0/16"] }],
});
const subnet = await memory.createEntities({
  entities: [{ name: "subnet-a", entityType: "subnet", observations: [`in ${vpc.entities[0].name}`] }],
});
await memory.createRelations({
  relations: [{ from: vpc.entities[0].name, to: subnet.entities[0].name, relationType: "contains" }],
});
if (names.includes("subnet-legacy")) {
  await memory.deleteEntities({ entityNames: ["subnet-legacy"] });
}
return { vpc: vpc.entities[0].name, subnet: subnet.entities[0].name };
