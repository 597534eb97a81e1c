// A stub with nothing in it: matrix-bot-sdk loads it but Commons never uses its crypto.
// eslint-disable-next-line no-undef
module.exports = {};
