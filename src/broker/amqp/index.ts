/** The AMQP 0-9-1 transport (RabbitMQ). */
export { AmqpBroker, type AmqpBrokerOptions, type ReconnectInfo } from './amqp-broker.js';
export { parseAmqpUrl } from './connection.js';
