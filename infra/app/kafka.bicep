// Kafka engagement pipeline transport.
//
// kafkaMode eventhubs: the topics are hubs of a DEDICATED Event Hubs namespace, reached through its Kafka
// endpoint (<namespace>.servicebus.windows.net:9093, SASL_SSL + PLAIN). The Functions Kafka extension supports
// PLAIN, SCRAM and OAUTHBEARER (OIDC with a client secret) but has no managed identity for the Kafka trigger
// (https://learn.microsoft.com/azure/azure-functions/functions-bindings-kafka-trigger), so this namespace
// keeps SAS enabled. StreamDuck creates two rules without Manage rights: `streamduck-app` (Listen + Send, for
// the app, in Key Vault) and `cdc-producer` (Send, for Debezium / Kafka Connect). Azure itself also creates
// `RootManageSharedAccessKey` (Manage, Send, Listen) with every namespace; StreamDuck never uses it, Bicep
// cannot remove it, and it works as long as local auth is on. Whoever holds listKeys on the namespace (Owner,
// Contributor, Azure Event Hubs Data Owner) can read it: docs/deploy.md says how to rotate or delete it.
// The mappings namespace stays Entra ID only (disableLocalAuth: true).
// kafkaMode external: nothing is created; the broker list and credentials come from parameters.
param useEventHubs bool
param name string
param location string
param tags object
param topics array
param partitions int
param retentionHours int
param consumerGroup string
param externalKafka object
@secure()
param externalPassword string
param keyVaultName string
param workspaceId string
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

var hubTopics = useEventHubs ? topics : []
var storePassword = useEventHubs || !empty(externalPassword)

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = if (useEventHubs) {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard' // the Kafka endpoint needs Standard or above
    tier: 'Standard'
    capacity: 1
  }
  properties: {
    // Required: the app authenticates to the Kafka endpoint with a SAS connection string (PLAIN). This also
    // keeps RootManageSharedAccessKey valid (docs/deploy.md, Kafka authentication).
    // https://learn.microsoft.com/azure/event-hubs/authenticate-shared-access-signature#disabling-localsas-key-authentication
    disableLocalAuth: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: publicNetworkAccess
    isAutoInflateEnabled: true
    maximumThroughputUnits: 4
    zoneRedundant: true
  }
}

resource appRule 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' = if (useEventHubs) {
  parent: namespace
  name: 'streamduck-app'
  properties: {
    rights: [
      'Listen'
      'Send'
    ]
  }
}

resource producerRule 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' = if (useEventHubs) {
  parent: namespace
  name: 'cdc-producer'
  properties: {
    rights: [
      'Send'
    ]
  }
}

module topicHubs 'eventhub.bicep' = [for (topic, i) in hubTopics: {
  name: 'topic-${i + 1}'
  params: {
    namespaceName: namespace.name
    hubName: topic
    partitions: partitions
    retentionHours: retentionHours
    // Kafka consumer groups are created by the Kafka protocol itself; no Event Hubs consumer group needed.
    consumerGroup: ''
  }
}]

module passwordSecret 'keyvault-secret.bicep' = if (storePassword) {
  name: 'kafka-password-secret'
  params: {
    keyVaultName: keyVaultName
    name: 'kafka-password'
    value: useEventHubs ? appRule.listKeys().primaryConnectionString : externalPassword
    contentType: 'text/plain; Kafka SASL password'
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (useEventHubs) {
  name: 'to-log-analytics'
  scope: namespace
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output namespaceId string = useEventHubs ? namespace.id : ''
output brokers string = useEventHubs ? '${name}.servicebus.windows.net:9093' : externalKafka.brokers
output protocol string = useEventHubs ? 'SASLSSL' : externalKafka.protocol
output authMode string = useEventHubs ? 'PLAIN' : externalKafka.authMode
output username string = useEventHubs ? '$ConnectionString' : externalKafka.username
output consumerGroup string = consumerGroup
output passwordSecretName string = storePassword ? 'kafka-password' : ''
