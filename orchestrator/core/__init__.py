"""The small core shared by the server and the runtime: flow-run states and their allowed moves,
the errors services raise, and flow parameters (schema and validation). It imports nothing of
ours, so a flow process on a remote worker can use it without the server's settings."""
