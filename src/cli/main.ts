process.stderr.write('protokv: the server is not available yet\n');
process.exitCode = 1;
